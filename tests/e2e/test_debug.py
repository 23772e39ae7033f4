"""``cicd debug NAME#N --job J``: a shell in a failed job's container, through the entry point.

Each test runs real pipelines (``cicd run``, in process) whose jobs fail, then ``cicd debug``
as a user types it: with ``--command`` (no terminal), or under a pseudo-terminal for the
interactive shell. Whatever a test leaves (snapshot images of its ``CICD_HOME``, a session
container) is removed on the way out.
"""

from __future__ import annotations

import os
import select
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2ekit import BUSYBOX, CICD, Project, default_sigint

from backend.debug_session import LABEL_SESSION
from backend.debugging import folder_hash
from backend.runner.base import LABEL_DEBUG

PIPELINE = f"""\
pipeline: {{name: demo, image: {BUSYBOX}}}
jobs:
  - name: broken
    stage: build
    script:
      - echo from-workspace > file
      - echo from-tmp > /tmp/made-by-job
      - "false"
"""
# two jobs of one run that both fail (fail_fast off: the first does not cancel the second);
# the second ends last
TWO_FAILING = f"""\
pipeline: {{name: twice, image: {BUSYBOX}, fail_fast: false}}
jobs:
  - {{name: first, stage: build, script: ["echo one > one", "false"]}}
  - {{name: second, stage: build, script: ["sleep 2", "echo two > two", "false"]}}
"""
HOSTILE = "..x/y z"  # names are never paths: '..' itself is refused by validation
SECRET = f"""\
pipeline: {{name: secretive, image: {BUSYBOX}}}
jobs:
  - {{name: uses, stage: build, script: ['test -n "$TOKEN"', "false"]}}
"""
SHOW = "cat file; cat /tmp/made-by-job; pwd"


def snapshot_images(home: Path) -> set[str]:
    """Ids of the snapshot images of ``home``'s ``cicd debug`` snapshots."""
    listed = subprocess.run(
        ["docker", "images", "-q", "--no-trunc", "--filter",
         f"label={LABEL_DEBUG}={folder_hash(home / 'debug')}"],
        capture_output=True, text=True, check=True,
    )
    return set(listed.stdout.split())


def session_containers() -> set[str]:
    """Ids of every ``cicd debug`` session container, running or not."""
    listed = subprocess.run(
        ["docker", "ps", "-a", "-q", "--filter", f"label={LABEL_SESSION}"],
        capture_output=True, text=True, check=True,
    )
    return set(listed.stdout.split())


@pytest.fixture
def debugged(project: Project) -> Iterator[Project]:
    """``project``; its snapshot images and any session container are removed afterwards."""
    before = session_containers()
    yield project
    left = session_containers() - before
    if left:
        subprocess.run(["docker", "rm", "-f", *left], capture_output=True, check=False)
    images = snapshot_images(project.home)
    if images:
        subprocess.run(["docker", "rmi", "-f", *images], capture_output=True, check=False)


def failed_run(project: Project, *args: str) -> None:
    out = project.run(*args)
    assert out.returncode == 1, out.stdout + out.stderr


def snapshot_folders(project: Project) -> list[str]:
    """What is under ``CICD_HOME/debug`` (the lock file aside)."""
    folder = project.home / "debug"
    return sorted(p.name for p in folder.iterdir() if p.name != ".lock")


@pytest.mark.docker
def test_debug_command_sees_workspace_and_container_changes(debugged: Project) -> None:
    debugged.commit({".pipelines/pipeline.yaml": PIPELINE})
    failed_run(debugged)
    before = session_containers()

    out = debugged.cicd("debug", "demo#1", "--job", "broken", "--command", SHOW)

    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["from-workspace", "from-tmp", "/workspace"]
    assert out.stderr == ""
    assert session_containers() == before
    assert len(snapshot_folders(debugged)) == 1
    assert len(snapshot_images(debugged.home)) == 1


@pytest.mark.docker
def test_debug_command_exit_code_is_the_commands(debugged: Project) -> None:
    debugged.commit({".pipelines/pipeline.yaml": PIPELINE})
    failed_run(debugged)

    out = debugged.cicd("debug", "demo#1", "--job", "broken", "--command", "echo oops >&2; exit 7")

    assert (out.returncode, out.stdout, out.stderr) == (7, "", "oops\n")


@pytest.mark.docker
def test_debug_changes_are_thrown_away(debugged: Project) -> None:
    debugged.commit({".pipelines/pipeline.yaml": PIPELINE})
    failed_run(debugged)

    debugged.cicd("debug", "demo#1", "--job", "broken", "--command", "rm file; echo x > /tmp/new")
    out = debugged.cicd("debug", "demo#1", "--job", "broken", "--command", "cat file; ls /tmp")

    assert out.stdout.splitlines() == ["from-workspace", "made-by-job"], out.stderr


def _read_until(fd: int, needle: bytes, seen: bytearray, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while needle not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {needle!r} within {timeout}s: {bytes(seen)!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the other side closed: the process ended
                chunk = b""
            assert chunk, f"output ended before {needle!r}: {bytes(seen)!r}"
            seen += chunk


@pytest.mark.docker
def test_debug_interactive_shell_under_a_terminal(debugged: Project) -> None:
    debugged.commit({".pipelines/pipeline.yaml": PIPELINE})
    failed_run(debugged)
    before = session_containers()
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [str(CICD), "debug", "demo#1", "--job", "broken"],
        cwd=debugged.repo,
        env={**debugged.env, "TERM": "dumb", "PS1": "$ "},
        stdin=slave,
        stdout=slave,
        stderr=slave,
        preexec_fn=default_sigint,
    )
    os.close(slave)
    seen = bytearray()
    try:
        _read_until(master, b"throw away", seen, timeout=60)
        os.write(master, b"cat file; cat /tmp/made-by-job\n")
        _read_until(master, b"from-tmp", seen, timeout=30)
        assert b"from-workspace" in seen
        os.write(master, b"exit\n")
        assert proc.wait(timeout=30) == 0, bytes(seen)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)

    assert session_containers() == before
    assert len(snapshot_folders(debugged)) == 1  # the session's copy lived in its container


@pytest.mark.docker
def test_debug_without_terminal_asks_for_command(debugged: Project) -> None:
    debugged.commit({".pipelines/pipeline.yaml": PIPELINE})
    failed_run(debugged)

    out = debugged.cicd("debug", "demo#1", "--job", "broken")

    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        "error: cicd debug needs a terminal for its shell; use --command CMD"
    ]


@pytest.mark.docker
def test_debug_newer_failure_of_pipeline_replaces_snapshot(debugged: Project) -> None:
    debugged.commit({".pipelines/pipeline.yaml": PIPELINE})
    failed_run(debugged)
    failed_run(debugged)

    old = debugged.cicd("debug", "demo#1", "--job", "broken", "--command", "true")
    new = debugged.cicd("debug", "demo#2", "--job", "broken", "--command", "cat file")

    assert old.returncode == 1
    assert old.stderr.splitlines() == [
        "error: no snapshot of job 'broken' of demo#1: only the last failed job of each "
        "pipeline is kept, for 7 days (run it with `cicd run --keep-failed` to keep every "
        "failed job)"
    ]
    assert (new.returncode, new.stdout) == (0, "from-workspace\n")
    assert len(snapshot_folders(debugged)) == 1
    assert len(snapshot_images(debugged.home)) == 1


@pytest.mark.docker
def test_debug_keep_failed_keeps_every_failed_job_of_run(debugged: Project) -> None:
    debugged.commit({".pipelines/pipeline.yaml": TWO_FAILING})
    failed_run(debugged, "--keep-failed")

    first = debugged.cicd("debug", "twice#1", "--job", "first", "--command", "ls; cat one")
    second = debugged.cicd("debug", "twice#1", "--job", "second", "--command", "ls; cat two")

    # the shared workspace as each job left it: the second ended after the first wrote one
    assert (first.returncode, first.stdout) == (0, "one\none\n"), first.stderr
    assert (second.returncode, second.stdout) == (0, "one\ntwo\ntwo\n"), second.stderr
    assert len(snapshot_images(debugged.home)) == 2


@pytest.mark.docker
def test_debug_default_keeps_only_last_failed_job_of_run(debugged: Project) -> None:
    debugged.commit({".pipelines/pipeline.yaml": TWO_FAILING})
    failed_run(debugged)

    first = debugged.cicd("debug", "twice#1", "--job", "first", "--command", "true")
    second = debugged.cicd("debug", "twice#1", "--job", "second", "--command", "cat two")

    assert first.returncode == 1
    assert "no snapshot of job 'first' of twice#1" in first.stderr
    assert (second.returncode, second.stdout) == (0, "two\n"), second.stderr
    assert len(snapshot_images(debugged.home)) == 1


@pytest.mark.docker
def test_gc_removes_debug_snapshots(debugged: Project) -> None:
    debugged.commit({".pipelines/pipeline.yaml": TWO_FAILING})
    failed_run(debugged, "--keep-failed")
    assert len(snapshot_images(debugged.home)) == 2

    out = debugged.cicd("gc")

    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "removed 2 debug snapshot(s)"
    assert snapshot_images(debugged.home) == set()
    assert snapshot_folders(debugged) == []
    gone = debugged.cicd("debug", "twice#1", "--job", "first", "--command", "true")
    assert "no snapshot of job 'first' of twice#1" in gone.stderr


@pytest.mark.docker
def test_debug_hostile_job_name_is_harmless(debugged: Project) -> None:
    pipeline = PIPELINE.replace("name: broken", f"name: '{HOSTILE}'")
    debugged.commit({".pipelines/pipeline.yaml": pipeline})
    failed_run(debugged)

    out = debugged.cicd("debug", "demo#1", "--job", HOSTILE, "--command", "cat file")

    assert (out.returncode, out.stdout) == (0, "from-workspace\n"), out.stderr
    [folder] = snapshot_folders(debugged)
    assert len(folder) == 32 and set(folder) <= set("0123456789abcdef")
    assert not list(debugged.home.parent.rglob("y z"))


@pytest.mark.docker
def test_debug_secret_is_masked_unless_given_again(debugged: Project) -> None:
    debugged.commit({".pipelines/pipeline.yaml": SECRET})
    debugged.env["TOKEN"] = "s3cr3t-value"
    failed_run(debugged, "--secret", "TOKEN")
    stored = b"".join(p.read_bytes() for p in (debugged.home / "debug").rglob("*") if p.is_file())

    masked = debugged.cicd("debug", "secretive#1", "--job", "uses", "--command", "echo $TOKEN")
    given = debugged.cicd(
        "debug", "secretive#1", "--job", "uses", "--secret", "TOKEN", "--command", "echo $TOKEN"
    )

    assert b"s3cr3t-value" not in stored
    assert (masked.returncode, masked.stdout) == (0, "****\n")
    assert masked.stderr.splitlines() == [
        "secret TOKEN is **** here: give it again with --secret TOKEN"
    ]
    assert (given.returncode, given.stdout, given.stderr) == (0, "s3cr3t-value\n", "")


@pytest.mark.docker
def test_debug_succeeded_job_says_only_failed_jobs_are_kept(debugged: Project) -> None:
    debugged.commit({".pipelines/pipeline.yaml": PIPELINE.replace('"false"', "'true'")})
    out = debugged.run()
    assert out.returncode == 0, out.stdout + out.stderr

    debug = debugged.cicd("debug", "demo#1", "--job", "broken", "--command", "true")

    assert debug.returncode == 1
    assert debug.stderr.splitlines() == [
        "error: job 'broken' of demo#1 is SUCCESS: only failed jobs are kept for cicd debug"
    ]
    assert not (debugged.home / "debug").exists()


@pytest.mark.docker
def test_debug_unknown_run_or_job_is_one_line(debugged: Project) -> None:
    debugged.commit({".pipelines/pipeline.yaml": PIPELINE})
    failed_run(debugged)

    run = debugged.cicd("debug", "demo#9", "--job", "broken", "--command", "true")
    job = debugged.cicd("debug", "demo#1", "--job", "nope", "--command", "true")

    assert run.returncode == job.returncode == 1
    assert len(run.stderr.splitlines()) == len(job.stderr.splitlines()) == 1
    assert "demo#9" in run.stderr and "nope" in job.stderr


@pytest.mark.docker
def test_debug_with_server_set_is_refused(debugged: Project) -> None:
    debugged.env["CICD_SERVER"] = "http://127.0.0.1:9"

    out = debugged.cicd("debug", "demo#1", "--job", "broken", "--command", "true")

    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        "error: cicd debug opens a shell where the job ran, with its Docker engine: not "
        "through the server at http://127.0.0.1:9 (unset CICD_SERVER, and run it on that "
        "machine)"
    ]


@pytest.mark.docker
def test_debug_isolated_workspace_has_checkout_and_job_changes(debugged: Project) -> None:
    # an isolated job's workspace is an overlay volume over the checkout: both halves are kept
    pipeline = PIPELINE.replace("image: cicd-busybox:latest}", "image: cicd-busybox:latest, "
                                "workspace: isolated}")
    assert "workspace: isolated" in pipeline
    debugged.commit({".pipelines/pipeline.yaml": pipeline, "committed.txt": "from-commit\n"})
    failed_run(debugged)

    out = debugged.cicd(
        "debug", "demo#1", "--job", "broken", "--command", "cat committed.txt file; pwd"
    )

    assert out.stdout.splitlines() == ["from-commit", "from-workspace", "/workspace"], out.stderr


@pytest.mark.docker
def test_debug_gitlab_job_with_after_script_is_kept_as_it_ended(debugged: Project) -> None:
    # a job with after_script runs as exec shells of a live container: snapshot after both
    gitlab_ci = f"""
broken:
  image: {BUSYBOX}
  script:
    - echo from-script > file
    - exit 3
  after_script:
    - echo from-after > after.txt
    - echo "$CI_JOB_STATUS" > /tmp/status
"""
    debugged.commit({".gitlab-ci.yml": gitlab_ci})
    failed_run(debugged)

    out = debugged.cicd(
        "debug", "repo#1", "--job", "broken", "--command", "cat file after.txt /tmp/status"
    )

    assert out.stdout.splitlines() == ["from-script", "from-after", "failed"], out.stderr
