"""after_script in DockerRunner, against the real engine: a new shell of the same container after
the script, whatever happened to it, with GitLab's CI_JOB_STATUS; it never changes the outcome.
"""

from __future__ import annotations

import _thread
import signal
import threading
import time
import uuid
from collections.abc import Callable

import pytest

from backend.runner.base import CancelEvent, JobResult, JobSpec, Outcome
from backend.runner.docker import DockerRunner

MakeSpec = Callable[..., JobSpec]
docker = pytest.mark.docker
AFTER = ['echo "after: $CI_JOB_STATUS"']
SECRET = "s3cr3t-" + uuid.uuid4().hex


def run(
    runner: DockerRunner,
    spec: JobSpec,
    cancel: threading.Event | None = None,
    on_line: Callable[[str], None] | None = None,
) -> tuple[JobResult, list[str]]:
    """Run ``spec``; its result and every line it showed, ``$ command`` echoes included."""
    lines: list[str] = []

    def sink(line: str) -> None:
        lines.append(line)
        if on_line is not None:
            on_line(line)

    result = runner.run_job(spec, sink, cancel or threading.Event())
    return result, lines


@docker
def test_after_script_on_success_runs_after_script_with_status_success(
    docker_runner: DockerRunner, make_spec: MakeSpec
) -> None:
    spec = make_spec(["echo main > file", "echo ran"], after_script=["cat file", *AFTER])

    result, lines = run(docker_runner, spec)

    assert (result.outcome, result.exit_code, result.error) == (Outcome.SUCCESS, 0, None)
    assert lines == [
        "$ echo main > file",
        "$ echo ran",
        "ran",
        "$ cat file",  # same working directory and workspace
        "main",
        '$ echo "after: $CI_JOB_STATUS"',
        "after: success",
    ]
    assert result.log_lines == len(lines)


@docker
def test_after_script_on_failure_job_keeps_script_exit_code(
    docker_runner: DockerRunner, make_spec: MakeSpec
) -> None:
    spec = make_spec(
        ["echo bad >&2", "exit 3"], env={"WHO": "env"}, after_script=['echo "$WHO"', *AFTER]
    )

    result, lines = run(docker_runner, spec)

    assert (result.outcome, result.exit_code, result.error) == (Outcome.FAILED, 3, None)
    assert lines == [
        "$ echo bad >&2",
        "bad",
        "$ exit 3",
        '$ echo "$WHO"',
        "env",  # the job's environment
        '$ echo "after: $CI_JOB_STATUS"',
        "after: failed",
    ]


@docker
def test_after_script_on_timeout_runs_with_status_failed(
    docker_runner: DockerRunner, make_spec: MakeSpec
) -> None:
    spec = make_spec(["echo start", "sleep 30", "echo never"], timeout=1.0, after_script=AFTER)
    begin = time.monotonic()

    result, lines = run(docker_runner, spec)

    assert (result.outcome, result.exit_code) == (Outcome.FAILED, None)
    assert result.error == "timed out after 1s"
    assert lines == [
        "$ echo start",
        "start",
        "$ sleep 30",
        '$ echo "after: $CI_JOB_STATUS"',
        "after: failed",
    ]
    assert time.monotonic() - begin < 10


@docker
def test_after_script_on_cancel_runs_with_status_canceled(
    docker_runner: DockerRunner, make_spec: MakeSpec
) -> None:
    cancel = threading.Event()

    def cancel_on_start(line: str) -> None:
        if line == "started":
            cancel.set()

    spec = make_spec(["echo started", "sleep 30"], after_script=AFTER)
    begin = time.monotonic()

    result, lines = run(docker_runner, spec, cancel, cancel_on_start)

    assert (result.outcome, result.exit_code, result.error) == (Outcome.CANCELED, None, None)
    assert lines == [
        "$ echo started",
        "started",
        "$ sleep 30",
        '$ echo "after: $CI_JOB_STATUS"',
        "after: canceled",
    ]
    assert time.monotonic() - begin < 10


@docker
def test_after_script_second_cancel_stops_it(
    docker_runner: DockerRunner, make_spec: MakeSpec
) -> None:
    cancel = CancelEvent()

    def cancel_twice(line: str) -> None:
        if line in ("started", "cleaning"):
            cancel.set()

    spec = make_spec(["echo started", "sleep 30"], after_script=["echo cleaning", "sleep 30"])
    begin = time.monotonic()

    result, lines = run(docker_runner, spec, cancel, cancel_twice)

    assert (result.outcome, result.exit_code, result.error) == (Outcome.CANCELED, None, None)
    assert lines == [
        "$ echo started",
        "started",
        "$ sleep 30",
        "$ echo cleaning",
        "cleaning",
        "$ sleep 30",
        "cicd: warning: after_script stopped: canceled again",
    ]
    assert time.monotonic() - begin < 10


@docker
def test_after_script_first_cancel_during_it_lets_it_finish(
    docker_runner: DockerRunner, make_spec: MakeSpec
) -> None:
    cancel = CancelEvent()

    def cancel_once(line: str) -> None:
        if line == "cleaning":
            cancel.set()

    spec = make_spec(["echo ok"], after_script=["echo cleaning", "sleep 1", *AFTER])

    result, lines = run(docker_runner, spec, cancel, cancel_once)

    # the script had ended: its outcome stands, and the after_script is not cut short
    assert (result.outcome, result.exit_code, result.error) == (Outcome.SUCCESS, 0, None)
    assert lines[-2:] == ['$ echo "after: $CI_JOB_STATUS"', "after: success"]


@docker
def test_after_script_failing_leaves_succeeding_job_success_with_warning(
    docker_runner: DockerRunner, make_spec: MakeSpec
) -> None:
    spec = make_spec(["echo ok"], after_script=["echo cleanup", "exit 7", "echo never"])

    result, lines = run(docker_runner, spec)

    assert (result.outcome, result.exit_code, result.error) == (Outcome.SUCCESS, 0, None)
    assert lines == [
        "$ echo ok",
        "ok",
        "$ echo cleanup",
        "cleanup",
        "$ exit 7",
        "cicd: warning: after_script failed (exit code 7)",
    ]


@docker
def test_after_script_over_its_timeout_is_killed_and_job_keeps_outcome(
    docker_runner: DockerRunner, make_spec: MakeSpec
) -> None:
    spec = make_spec(
        ["echo ok"], after_script=["echo slow", "sleep 30", "echo never"], after_script_timeout=1.0
    )
    begin = time.monotonic()

    result, lines = run(docker_runner, spec)

    assert (result.outcome, result.exit_code, result.error) == (Outcome.SUCCESS, 0, None)
    assert lines == [
        "$ echo ok",
        "ok",
        "$ echo slow",
        "slow",
        "$ sleep 30",
        "cicd: warning: after_script timed out after 1s",
    ]
    assert time.monotonic() - begin < 10


@docker
def test_after_script_secret_reaches_it_through_stdin(
    docker_runner: DockerRunner, make_spec: MakeSpec
) -> None:
    spec = make_spec(
        ['echo "s=$TOKEN"'], secrets={"TOKEN": SECRET}, after_script=['echo "a=$TOKEN"', "cat"]
    )

    result, lines = run(docker_runner, spec)

    # the value reaches both shells (the recorder masks it in the log: see the e2e test), and
    # the after_script's stdin ends after the secrets, as the script's does (`cat` returns)
    assert (result.outcome, result.error) == (Outcome.SUCCESS, None)
    assert [line for line in lines if not line.startswith("$ ")] == [
        f"s={SECRET}",
        f"a={SECRET}",
    ]


@docker
def test_after_script_background_process_of_script_does_not_hold_the_job(
    docker_runner: DockerRunner, make_spec: MakeSpec
) -> None:
    spec = make_spec(["sleep 60 &", "echo bg"], after_script=AFTER)
    begin = time.monotonic()

    result, lines = run(docker_runner, spec)

    assert (result.outcome, result.exit_code) == (Outcome.SUCCESS, 0)
    assert lines[-2:] == ['$ echo "after: $CI_JOB_STATUS"', "after: success"]
    assert time.monotonic() - begin < 10


@docker
def test_after_script_keyboard_interrupt_still_removes_container(
    docker_runner: DockerRunner, make_spec: MakeSpec
) -> None:
    def interrupt(line: str) -> None:
        if line == "cleaning":  # Ctrl-C while the after_script runs, as a second one would
            _thread.interrupt_main()

    spec = make_spec(["echo ok"], after_script=["echo cleaning", "sleep 30"])
    # interrupt_main does nothing while SIGINT is ignored (a suite started in the background)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            run(docker_runner, spec, on_line=interrupt)
    finally:
        signal.signal(signal.SIGINT, previous)
    # The autouse fixture then checks that no container of this run is left.


@docker
def test_after_script_on_timeout_in_debian_dash_runs_with_status_failed(
    docker_runner: DockerRunner, make_spec: MakeSpec, python_image: str
) -> None:
    spec = make_spec(["sleep 30"], image=python_image, timeout=1.0, after_script=AFTER)

    result, lines = run(docker_runner, spec)

    assert (result.outcome, result.error) == (Outcome.FAILED, "timed out after 1s")
    assert lines == ["$ sleep 30", '$ echo "after: $CI_JOB_STATUS"', "after: failed"]
