"""Secrets in DockerRunner, against the real engine: they reach the job's shell through its stdin
and nothing else: not the container's configuration (which Docker keeps on disk), not a file,
not another user of the container.
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from imagekit import image_with_user

import backend.runner.docker as docker_module
from backend.runner.base import LABEL_RUN, JobResult, JobSpec, Outcome
from backend.runner.docker import DockerRunner

MakeSpec = Callable[..., JobSpec]
docker = pytest.mark.docker
SECRET = "s3cr3t-" + uuid.uuid4().hex  # unique: found anywhere, it came from this test


def run(
    runner: DockerRunner, spec: JobSpec, on_line: Callable[[str], None] | None = None
) -> tuple[JobResult, list[str]]:
    """Run ``spec``; its result and the lines its commands printed (no ``$ command`` echoes)."""
    lines: list[str] = []

    def sink(line: str) -> None:
        lines.append(line)
        if on_line is not None:
            on_line(line)

    result = runner.run_job(spec, sink, threading.Event())
    return result, [line for line in lines if not line.startswith("$ ")]


def container_of(spec: JobSpec) -> str:
    """The id of the one container of ``spec``'s run."""
    listed = subprocess.run(
        ["docker", "ps", "-q", "--no-trunc", "--filter", f"label={LABEL_RUN}={spec.run_id}"],
        capture_output=True,
        text=True,
        check=True,
    )
    (found,) = listed.stdout.split()
    return found


def stored_config(container: str) -> str:
    """What the engine says and keeps on disk about ``container``: inspect and config.v2.json."""
    inspected = subprocess.run(
        ["docker", "inspect", container], capture_output=True, text=True, check=True
    ).stdout
    root = subprocess.run(
        ["docker", "info", "--format", "{{.DockerRootDir}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    on_disk = Path(root, "containers", container, "config.v2.json")
    return inspected + on_disk.read_text()


def look_at_config(line: str, spec: JobSpec, configs: list[str]) -> None:
    """On the line ``started``, keep what the engine stores about the running container."""
    if line == "started":
        configs.append(stored_config(container_of(spec)))


@pytest.fixture(scope="module")
def nonroot_image(busybox_image: str) -> Iterator[str]:
    """busybox with ``USER 1000:1000``, as many published images run."""
    with image_with_user(busybox_image, "1000:1000") as name:
        yield name


@docker
def test_run_job_secret_reaches_script_but_not_container_config(
    docker_runner: DockerRunner, make_spec: MakeSpec
) -> None:
    spec = make_spec(
        ["echo started", "sleep 1", 'echo "t=$TOKEN"'], secrets={"TOKEN": SECRET}
    )
    configs: list[str] = []
    result, printed = run(docker_runner, spec, lambda line: look_at_config(line, spec, configs))

    assert (result.outcome, result.error) == (Outcome.SUCCESS, None)
    assert printed == ["started", f"t={SECRET}"]
    assert len(configs) == 1 and SECRET not in configs[0]
    assert '"OpenStdin": true' in configs[0]  # how the value went in instead


@docker
def test_run_job_secrets_without_dev_shm_stay_out_of_container_config(
    docker_runner: DockerRunner,
    make_spec: MakeSpec,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the runner used to fall back to the container's environment when it found no tmpfs
    monkeypatch.setattr(docker_module, "SECRETS_TMPFS", str(tmp_path / "no-shm"), raising=False)
    spec = make_spec(["echo started", "sleep 1", 'echo "t=$TOKEN"'], secrets={"TOKEN": SECRET})
    configs: list[str] = []
    result, printed = run(docker_runner, spec, lambda line: look_at_config(line, spec, configs))

    assert (result.outcome, result.error) == (Outcome.SUCCESS, None)
    assert printed == ["started", f"t={SECRET}"]
    assert len(configs) == 1 and SECRET not in configs[0]


@docker
def test_run_job_secret_name_not_a_shell_name_fails_without_a_container(
    docker_runner: DockerRunner, make_spec: MakeSpec
) -> None:
    spec = make_spec(["echo ran"], secrets={"MY-TOKEN": SECRET})

    result, printed = run(docker_runner, spec)

    assert (result.outcome, result.exit_code) == (Outcome.FAILED, None)
    assert result.error == (
        "job 'job': secret name 'MY-TOKEN' is not a shell variable name "
        "(letters, digits and _, not starting with a digit)"
    )
    assert printed == []


@docker
def test_run_job_secret_values_arrive_intact_and_stdin_then_ends(
    docker_runner: DockerRunner, make_spec: MakeSpec
) -> None:
    # quotes, a newline, shell syntax, and ctrl-p ctrl-q (Docker's default detach keys)
    value = "it's \"$HOME\" `id`\nline two \x10\x11 end"
    spec = make_spec(
        ["printf '%s' \"$ODD\" | od -An -c | tr -s ' '", 'echo "plain=$PLAIN"', "cat", "echo eof"],
        secrets={"ODD": value, "PLAIN": "p"},
        timeout=20.0,
    )

    result, printed = run(docker_runner, spec)

    assert (result.outcome, result.error) == (Outcome.SUCCESS, None)  # `cat` saw end of input
    shown = subprocess.run(
        ["od", "-An", "-c"], input=value.encode(), capture_output=True, check=True
    ).stdout.decode()
    assert [" ".join(line.split()) for line in printed[:-2]] == [
        " ".join(line.split()) for line in shown.splitlines()
    ]
    assert printed[-2:] == ["plain=p", "eof"]


@docker
def test_run_job_non_root_image_user_gets_secret_other_uid_cannot_read_it(
    docker_runner: DockerRunner, make_spec: MakeSpec, nonroot_image: str
) -> None:
    # the job's processes hold the value in their environment: readable by their own uid only
    spec = make_spec(
        ["id -u", "sleep 2 & echo started", "wait", 'echo "t=$TOKEN"'],
        image=nonroot_image,
        secrets={"TOKEN": SECRET},
    )
    seen: dict[str, str] = {}

    def look(line: str) -> None:
        if line != "started":
            return
        container = container_of(spec)
        for uid in ("1000", "1001"):
            listed = subprocess.run(
                ["docker", "exec", "-u", f"{uid}:{uid}", container,
                 "sh", "-c", "cat /proc/[0-9]*/environ 2>/dev/null; true"],
                capture_output=True,
                text=True,
                check=True,
            )
            seen[uid] = listed.stdout

    result, printed = run(docker_runner, spec, look)

    assert (result.outcome, result.error) == (Outcome.SUCCESS, None)
    assert printed == ["1000", "started", f"t={SECRET}"]
    assert SECRET in seen["1000"]  # the job's own user: the check below can see a value
    assert SECRET not in seen["1001"]


@docker
def test_run_job_secrets_leave_no_file_in_dev_shm(
    docker_runner: DockerRunner, make_spec: MakeSpec
) -> None:
    found: list[str] = []

    def look(line: str) -> None:
        if line == "started":
            for path in Path("/dev/shm").iterdir():
                try:
                    if path.is_file() and SECRET.encode() in path.read_bytes():
                        found.append(path.name)
                except OSError:
                    continue  # another session's file, gone meanwhile

    spec = make_spec(["echo started", "sleep 1"], secrets={"TOKEN": SECRET})
    result, _ = run(docker_runner, spec, look)

    assert result.outcome is Outcome.SUCCESS
    assert found == []  # a file there outlives a process killed with kill -9



@docker
def test_run_job_twelve_concurrent_cancels_with_secrets_leave_no_container(
    docker_runner: DockerRunner, make_spec: MakeSpec
) -> None:
    # cancel lands while some jobs are still being created, attached, or handed their secrets
    cancel = threading.Event()
    specs = [
        make_spec(["sleep 30"], job=f"j{i}", secrets={"TOKEN": SECRET}) for i in range(12)
    ]
    results: list[JobResult] = []
    threads = [
        threading.Thread(target=lambda s=spec: results.append(
            docker_runner.run_job(s, lambda line: None, cancel)
        ))
        for spec in specs
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    cancel.set()
    for thread in threads:
        thread.join(timeout=60)

    assert len(results) == 12
    assert {result.outcome for result in results} == {Outcome.CANCELED}
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={LABEL_RUN}={specs[0].run_id}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert left.stdout == ""
