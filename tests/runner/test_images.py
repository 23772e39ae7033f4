"""Images: ``image:entrypoint``, pull policies and images without a shell.

The Docker runner against the real engine with local images only (a busybox built locally with
an entrypoint of its own, an imported image holding one file); ``prepare_images`` with the
``FakeRunner``, which records how each image was asked for.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import pytest

from backend.execution import RunContext, prepare_images
from backend.pipeline.model import Job, Pipeline, Service, Stage
from backend.recording import Recorder
from backend.runner.base import JobResult, JobSpec, Outcome, PullPolicy
from backend.runner.docker import DockerRunner
from backend.runner.fake import FakeRunner

MakeSpec = Callable[..., JobSpec]
docker = pytest.mark.docker
ENTRY_IMAGE = "cicd-test-entrypoint:latest"
# an entrypoint that says it ran, then runs what it was given, as GitLab expects of one
ENTRY = ["sh", "-c", 'echo "entry ran with $1 $2"; exec "$@"', "entry"]


def run(runner: DockerRunner, spec: JobSpec) -> tuple[JobResult, list[str]]:
    """Run ``spec``; its result and every line it showed."""
    lines: list[str] = []
    result = runner.run_job(spec, lines.append, threading.Event())
    return result, lines


@pytest.fixture(scope="module")
def entry_image(busybox_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The local busybox with an ENTRYPOINT that prints a line and then fails."""
    folder = tmp_path_factory.mktemp("entry-image")
    (folder / "Dockerfile").write_text(
        f'FROM {busybox_image}\nENTRYPOINT ["sh", "-c", "echo image entrypoint; exit 7"]\n'
    )
    subprocess.run(
        ["docker", "build", "-q", "-t", ENTRY_IMAGE, str(folder)], capture_output=True, check=True
    )
    yield ENTRY_IMAGE
    subprocess.run(["docker", "rmi", ENTRY_IMAGE], capture_output=True, check=False)


# -- image:entrypoint -------------------------------------------------------------------------


@docker
def test_image_entrypoint_runs_with_job_shell_as_arguments(
    docker_runner: DockerRunner, make_spec: MakeSpec
) -> None:
    spec = make_spec(["echo hi"], entrypoint=ENTRY)

    result, lines = run(docker_runner, spec)

    assert (result.outcome, result.exit_code, result.error) == (Outcome.SUCCESS, 0, None)
    assert lines == ["entry ran with sh -e", "$ echo hi", "hi"]  # it got `sh -e -c SCRIPT`


@docker
def test_image_entrypoint_with_after_script_starts_the_idle_container(
    docker_runner: DockerRunner, make_spec: MakeSpec
) -> None:
    # the entrypoint is the idle container's main process (given `sh`); the script and the
    # after_script are exec shells beside it, so its output reaches them through a file
    entry = ["sh", "-c", 'echo "entry ran with $1" > entry.txt; exec "$@"', "entry"]
    wait = "until [ -s entry.txt ]; do sleep 0.05; done; cat entry.txt"
    spec = make_spec([wait], entrypoint=entry, after_script=["echo after"], timeout=10.0)

    result, lines = run(docker_runner, spec)

    assert (result.outcome, result.exit_code, result.error) == (Outcome.SUCCESS, 0, None)
    assert lines == [f"$ {wait}", "entry ran with sh", "$ echo after", "after"]


@docker
def test_image_entrypoint_empty_runs_shell_without_image_entrypoint(
    docker_runner: DockerRunner, make_spec: MakeSpec, entry_image: str
) -> None:
    spec = make_spec(["echo hi"], image=entry_image, entrypoint=[""])

    result, lines = run(docker_runner, spec)

    assert (result.outcome, result.exit_code) == (Outcome.SUCCESS, 0)
    assert lines == ["$ echo hi", "hi"]


@docker
def test_image_entrypoint_of_image_is_used_when_job_names_it(
    docker_runner: DockerRunner, make_spec: MakeSpec, entry_image: str
) -> None:
    spec = make_spec(["echo hi"], image=entry_image, entrypoint=["sh", "-c", "echo mine; exit 7"])

    result, lines = run(docker_runner, spec)

    assert (result.outcome, result.exit_code) == (Outcome.FAILED, 7)
    assert lines == ["mine"]


# -- no shell ---------------------------------------------------------------------------------


@docker
@pytest.mark.parametrize("after", [[], ["echo after"]], ids=["script", "with-after-script"])
def test_image_without_shell_fails_with_one_line(
    docker_runner: DockerRunner, make_spec: MakeSpec, no_shell_image: str, after: list[str]
) -> None:
    spec = make_spec(["true"], image=no_shell_image, after_script=after)

    result, lines = run(docker_runner, spec)

    assert (result.outcome, result.exit_code, lines) == (Outcome.FAILED, None, [])
    error = result.error or ""
    assert error.startswith(f"image '{no_shell_image}' has no /bin/sh: "), error
    assert "\n" not in error and "Traceback" not in error


# -- pull policy ------------------------------------------------------------------------------


@docker
def test_image_pull_policy_never_missing_image_fails_with_one_line(
    docker_runner: DockerRunner, make_spec: MakeSpec
) -> None:
    missing = "cicd-test-missing:never"

    errors = docker_runner.ensure_images([missing], PullPolicy.NEVER)
    result, _ = run(docker_runner, make_spec(["true"], image=missing, pull_policy=PullPolicy.NEVER))

    assert errors == {missing: f"image '{missing}' not found locally (pull policy 'never')"}
    assert result.error == f"image '{missing}' not found locally (pull policy 'never')"


class _Warnings:
    """Stands for the run's Recorder: ``prepare_images`` only reports warnings through it."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def warning(self, text: str) -> None:
        self.lines.append(text)


def _context(jobs: list[Job], runner: FakeRunner, tmp_path: Path) -> RunContext:
    pipeline = Pipeline(name="p", stages=[Stage(name="test", jobs=jobs)])
    return RunContext(
        key="k",
        pipeline=pipeline,
        stage_order={"test": jobs},
        runner=runner,
        recorder=cast(Recorder, _Warnings()),
        workspace=tmp_path,
        commit="0" * 40,
        pull=PullPolicy.IF_NOT_PRESENT,
    )


def test_prepare_images_follows_each_pull_policy_and_services_images(tmp_path: Path) -> None:
    jobs = [
        Job(name="a", stage="test", image="img-a", script=["x"], pull_policy=["never"]),
        Job(
            name="b",
            stage="test",
            image="img-b",
            script=["x"],
            services=[Service(name="svc", pull_policy=["always"]), Service(name="svc-default")],
        ),
    ]
    runner = FakeRunner()

    prepare_images(_context(jobs, runner, tmp_path))

    asked = sorted((policy.value, sorted(images)) for images, policy in runner.image_calls)
    assert asked == [
        ("always", ["svc"]),
        ("if-not-present", ["img-b", "svc-default"]),  # the run's --pull
        ("never", ["img-a"]),
    ]


def test_prepare_images_pull_policy_list_tries_next_only_after_failure(tmp_path: Path) -> None:
    jobs = [
        Job(name="a", stage="test", image="gone", script=["x"], pull_policy=["never", "always"]),
        Job(name="b", stage="test", image="here", script=["x"], pull_policy=["never", "always"]),
    ]
    runner = FakeRunner(missing_images={"gone"})
    ctx = _context(jobs, runner, tmp_path)

    prepare_images(ctx)

    assert [(sorted(images), policy.value) for images, policy in runner.image_calls] == [
        (["gone", "here"], "never"),
        (["gone"], "always"),
    ]
    assert ctx.image_errors == {"gone": "image 'gone' not found", "here": None}
    assert cast(_Warnings, ctx.recorder).lines == ["image 'gone': image 'gone' not found"]
