"""DockerRunner against a real Docker engine and the local busybox image."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from backend.errors import EngineUnavailable
from backend.runner.base import LABEL_JOB, LABEL_RUN, JobResult, JobSpec, Outcome, PullPolicy
from backend.runner.docker import DockerRunner, shell_script

MakeSpec = Callable[..., JobSpec]
docker = pytest.mark.docker


@dataclass
class Output:
    """Collects a job's output lines with the monotonic time each one arrived."""

    lines: list[str] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    on_each: Callable[[str], None] | None = None

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        self.arrivals.append(time.monotonic())
        if self.on_each is not None:
            self.on_each(line)

    @property
    def printed(self) -> list[str]:
        """The lines the commands printed, without the ``$ command`` echo lines."""
        return [line for line in self.lines if not line.startswith("$ ")]


@pytest.fixture
def output() -> Output:
    """A fresh output collector to pass as ``on_line``."""
    return Output()


def run(runner: DockerRunner, spec: JobSpec, output: Output) -> JobResult:
    return runner.run_job(spec, output, threading.Event())


# -- outcomes ---------------------------------------------------------------------------------


@docker
def test_run_job_exit_zero_succeeds(
    docker_runner: DockerRunner, make_spec: MakeSpec, output: Output
) -> None:
    result = run(docker_runner, make_spec(["echo hello"]), output)

    assert (result.outcome, result.exit_code, result.error) == (Outcome.SUCCESS, 0, None)
    assert output.lines == ["$ echo hello", "hello"]
    assert result.log_lines == 2
    assert result.started_at <= result.finished_at


@docker
def test_run_job_nonzero_exit_fails_with_its_code(
    docker_runner: DockerRunner, make_spec: MakeSpec, output: Output
) -> None:
    result = run(docker_runner, make_spec(["echo bad >&2", "exit 3"]), output)

    assert (result.outcome, result.exit_code, result.error) == (Outcome.FAILED, 3, None)
    assert output.lines == ["$ echo bad >&2", "bad", "$ exit 3"]


@docker
def test_run_job_first_failing_command_stops_script(
    docker_runner: DockerRunner, make_spec: MakeSpec, output: Output
) -> None:
    result = run(docker_runner, make_spec(["echo one", "false", "echo two"]), output)

    assert (result.outcome, result.exit_code) == (Outcome.FAILED, 1)
    assert output.lines == ["$ echo one", "one", "$ false"]


@docker
def test_run_job_env_variables_reach_script(
    docker_runner: DockerRunner, make_spec: MakeSpec, output: Output
) -> None:
    spec = make_spec(['echo "$GREETING|$CI|$EMPTY|"'], env={"GREETING": "hi there", "CI": "true"})

    result = run(docker_runner, spec, output)

    assert result.outcome is Outcome.SUCCESS
    assert output.printed == ["hi there|true||"]


@docker
def test_run_job_workspace_shared_between_jobs(
    docker_runner: DockerRunner, make_spec: MakeSpec, output: Output
) -> None:
    first = run(docker_runner, make_spec(["pwd", "echo built > out.txt"], job="build"), output)
    second = run(docker_runner, make_spec(["cat /workspace/out.txt"], job="use"), output)

    assert (first.outcome, second.outcome) == (Outcome.SUCCESS, Outcome.SUCCESS)
    assert output.printed == ["/workspace", "built"]
    assert (make_spec([]).workspace / "out.txt").read_text() == "built\n"


@docker
def test_run_job_output_keeps_partial_last_line_and_replaces_bad_utf8(
    docker_runner: DockerRunner, make_spec: MakeSpec, output: Output
) -> None:
    spec = make_spec(["printf 'caf\\303\\251 \\377\\r\\n'", "printf 'no newline'"])

    result = run(docker_runner, spec, output)

    assert result.outcome is Outcome.SUCCESS
    assert output.printed == ["café \ufffd", "no newline"]


# -- streaming --------------------------------------------------------------------------------


@docker
def test_run_job_streams_lines_while_container_runs(
    docker_runner: DockerRunner, make_spec: MakeSpec, output: Output
) -> None:
    # The script cannot end before it sees the file we write when "a" reaches us: if output
    # only arrived at the end, the job would time out instead of printing "b".
    workspace = make_spec([]).workspace
    output.on_each = lambda line: (workspace / "ack").touch() if line == "a" else None
    spec = make_spec(["echo a", "until [ -f ack ]; do sleep 0.05; done", "echo b"], timeout=20.0)

    result = run(docker_runner, spec, output)

    assert (result.outcome, result.error) == (Outcome.SUCCESS, None)
    assert output.printed == ["a", "b"]
    a_arrived = output.arrivals[output.lines.index("a")]
    b_arrived = output.arrivals[output.lines.index("b")]
    assert a_arrived < b_arrived


@docker
def test_run_job_labels_identify_run_and_job(
    docker_runner: DockerRunner, make_spec: MakeSpec, output: Output
) -> None:
    spec = make_spec(["echo running", "sleep 0.3"], job="labelled")
    seen: list[str] = []

    def look(line: str) -> None:
        if line == "running":
            listed = subprocess.run(
                [
                    "docker",
                    "ps",
                    "-a",
                    "--filter",
                    f"label={LABEL_RUN}={spec.run_id}",
                    "--format",
                    f'{{{{.Label "{LABEL_JOB}"}}}}',
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            seen.extend(listed.stdout.split())

    output.on_each = look
    result = run(docker_runner, spec, output)

    assert result.outcome is Outcome.SUCCESS
    assert seen == ["labelled"]


@docker
def test_run_job_parallel_jobs_run_at_the_same_time(
    docker_runner: DockerRunner, make_spec: MakeSpec
) -> None:
    # Each job waits until all four have started: serialized jobs would time out.
    count = 4
    specs = [
        make_spec(
            [
                f"touch started-{i}",
                f"until [ $(ls started-* | wc -l) -ge {count} ]; do sleep 0.05; done",
            ],
            job=f"job-{i}",
            timeout=20.0,
        )
        for i in range(count)
    ]

    with ThreadPoolExecutor(count) as pool:
        results = list(pool.map(lambda spec: run(docker_runner, spec, Output()), specs))

    assert [(r.outcome, r.error) for r in results] == [(Outcome.SUCCESS, None)] * count


# -- timeout, cancel, interruption ------------------------------------------------------------


@docker
def test_run_job_over_timeout_is_killed_and_fails(
    docker_runner: DockerRunner, make_spec: MakeSpec, output: Output
) -> None:
    begin = time.monotonic()
    result = run(docker_runner, make_spec(["echo start", "sleep 30"], timeout=1.0), output)

    assert (result.outcome, result.exit_code) == (Outcome.FAILED, None)
    assert result.error == "timed out after 1s"
    assert output.printed == ["start"]
    assert time.monotonic() - begin < 10


@docker
def test_run_job_cancel_kills_container_fast(
    docker_runner: DockerRunner, make_spec: MakeSpec, output: Output
) -> None:
    cancel = threading.Event()
    canceled_at: list[float] = []

    def cancel_on_start(line: str) -> None:
        if line == "started":
            canceled_at.append(time.monotonic())
            cancel.set()

    output.on_each = cancel_on_start
    result = docker_runner.run_job(make_spec(["echo started", "sleep 30"]), output, cancel)
    returned_at = time.monotonic()

    assert (result.outcome, result.exit_code, result.error) == (Outcome.CANCELED, None, None)
    assert returned_at - canceled_at[0] < 5


@docker
def test_run_job_canceled_before_start_runs_nothing(
    docker_runner: DockerRunner, make_spec: MakeSpec, output: Output
) -> None:
    cancel = threading.Event()
    cancel.set()

    result = docker_runner.run_job(make_spec(["echo never"]), output, cancel)

    assert result.outcome is Outcome.CANCELED
    assert output.lines == []


class _InterruptingEvent(threading.Event):
    """A cancel event whose check raises KeyboardInterrupt once armed, like Ctrl-C would."""

    armed = False

    def is_set(self) -> bool:
        if self.armed:
            raise KeyboardInterrupt
        return super().is_set()


@docker
def test_run_job_keyboard_interrupt_still_removes_container(
    docker_runner: DockerRunner, make_spec: MakeSpec, output: Output
) -> None:
    cancel = _InterruptingEvent()

    def arm(line: str) -> None:
        if line == "started":
            cancel.armed = True

    output.on_each = arm
    spec = make_spec(["echo started", "sleep 30"])

    with pytest.raises(KeyboardInterrupt):
        docker_runner.run_job(spec, output, cancel)
    # The autouse fixture then checks that no container of this run is left.


@docker
def test_run_job_failing_output_handler_fails_job(
    docker_runner: DockerRunner, make_spec: MakeSpec
) -> None:
    def broken(line: str) -> None:
        raise RuntimeError("disk full")

    result = docker_runner.run_job(make_spec(["echo x", "sleep 30"]), broken, threading.Event())

    assert result.outcome is Outcome.FAILED
    assert result.error == "output handler of job 'job' failed: RuntimeError: disk full"


# -- images and engine ------------------------------------------------------------------------


@docker
def test_run_job_missing_image_fails_with_one_line(
    docker_runner: DockerRunner, make_spec: MakeSpec, output: Output
) -> None:
    result = run(docker_runner, make_spec(["true"], image="cicd-test-missing:none"), output)

    assert (result.outcome, result.exit_code) == (Outcome.FAILED, None)
    assert result.error == "image 'cicd-test-missing:none' not found locally"


@docker
def test_run_job_image_without_shell_cannot_start(
    docker_runner: DockerRunner, make_spec: MakeSpec, output: Output, no_shell_image: str
) -> None:
    result = run(docker_runner, make_spec(["true"], image=no_shell_image), output)

    assert (result.outcome, result.exit_code) == (Outcome.FAILED, None)
    assert result.error is not None
    assert result.error.startswith(f"image '{no_shell_image}' has no /bin/sh: ")
    assert '"sh"' in result.error
    assert "\n" not in result.error


@docker
def test_ensure_images_if_not_present_reports_only_missing(
    docker_runner: DockerRunner, busybox_image: str
) -> None:
    missing = "cicd-test-missing:none"

    errors = docker_runner.ensure_images(
        [busybox_image, missing, busybox_image], PullPolicy.IF_NOT_PRESENT
    )

    assert list(errors) == [busybox_image, missing]
    assert errors[busybox_image] is None
    assert (errors[missing] or "").startswith(
        f"image '{missing}' not found locally and pull failed: "
    )
    assert "\n" not in (errors[missing] or "")


@docker
def test_ensure_images_never_policy_does_not_pull(
    docker_runner: DockerRunner, busybox_image: str
) -> None:
    errors = docker_runner.ensure_images([busybox_image, "cicd-test-missing:none"], "never")  # type: ignore[arg-type]

    assert errors == {
        busybox_image: None,
        "cicd-test-missing:none": "image 'cicd-test-missing:none' not found locally "
        "(pull policy 'never')",
    }


@docker
def test_remove_run_containers_removes_only_that_run(
    docker_runner: DockerRunner, busybox_image: str
) -> None:
    def create(run_id: str) -> None:
        subprocess.run(
            [
                "docker",
                "create",
                "--label",
                "cicd.managed=1",
                "--label",
                f"{LABEL_RUN}={run_id}",
                busybox_image,
                "true",
            ],
            capture_output=True,
            check=True,
        )

    create("test-remove-a")
    create("test-remove-a")
    create("test-remove-b")

    assert docker_runner.remove_run_containers("test-remove-a") == 2
    assert docker_runner.remove_run_containers("test-remove-a") == 0
    assert docker_runner.remove_run_containers("test-remove-b") == 1


@pytest.fixture
def closed_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """DOCKER_HOST pointing at a unix socket nobody listens on."""
    path = tmp_path / "docker.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    yield f"unix://{path}"
    sock.close()


def test_check_unreachable_engine_raises_engine_unavailable(closed_socket: str) -> None:
    with pytest.raises(EngineUnavailable) as caught:
        DockerRunner().check()

    assert str(caught.value) == (
        f"cannot reach the Docker engine at {closed_socket}: Connection refused"
    )


def test_check_missing_socket_names_the_address(tmp_path: Path) -> None:
    address = f"unix://{tmp_path}/nothing.sock"

    with pytest.raises(EngineUnavailable) as caught:
        DockerRunner(address).check()

    assert str(caught.value) == (
        f"cannot reach the Docker engine at {address}: No such file or directory"
    )


def test_run_job_unreachable_engine_fails_with_one_line(
    closed_socket: str, make_spec: MakeSpec, output: Output
) -> None:
    result = DockerRunner().run_job(make_spec(["true"]), output, threading.Event())

    assert (result.outcome, result.exit_code) == (Outcome.FAILED, None)
    assert result.error == f"cannot reach the Docker engine at {closed_socket}: Connection refused"


def test_ensure_images_unreachable_engine_raises(closed_socket: str) -> None:
    with pytest.raises(EngineUnavailable):
        DockerRunner().ensure_images(["cicd-busybox:latest"], PullPolicy.IF_NOT_PRESENT)


# -- the script text --------------------------------------------------------------------------


def test_shell_script_echoes_each_command_quoted() -> None:
    assert shell_script(["echo 'hi'", "make"]) == (
        "exec 2>&1\n"
        "printf '%s\\n' '$ echo '\"'\"'hi'\"'\"''\n"
        "echo 'hi'\n"
        "printf '%s\\n' '$ make'\n"
        "make"
    )


def test_shell_script_without_echo_runs_commands_only() -> None:
    assert shell_script(["a", "b"], echo=False) == "exec 2>&1\na\nb"
