"""``cicd run`` through the local backend daemon (cicd_cli/daemon.py), end to end.

Each test gets a git project with its own ``CICD_HOME`` (``e2ekit.Project``, without the
``CICD_DAEMON=0`` the in-process e2e tests set), so the real console script starts a daemon for
it; the daemon uses the session's Prefect server through the inherited ``PREFECT_API_URL``. Every
daemon a test started is stopped at its teardown.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.processes import pid_running
from backend.settings import Settings
from cicd_cli.daemon import ensure_daemon, read_state, state_path, stop_daemon
from flows.prefect_api import read_local_server, stop_local_server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))  # not a package
from e2ekit import (
    BUSYBOX,
    SLEEPERS,
    Output,
    Project,
    git,
    jobs,
    managed_containers,
    prefect_flow_runs,
    remove_containers,
    sleeping_run,
    stages,
)

QUICK = f"""\
pipeline: {{name: quick, stages: [build, test], image: {BUSYBOX}}}
jobs:
  - {{name: compile, stage: build, script: "echo built-$CICD_JOB"}}
  - {{name: unit, stage: test, script: ["echo tested-$CICD_JOB", "test -e .pipelines/quick.yaml"]}}
"""
FAILFAST = f"""\
pipeline: {{name: failfast, stages: [one, two], image: {BUSYBOX}}}
jobs:
  - {{name: long, stage: one, script: ["sleep 60", "echo long-$CICD_JOB"]}}
  - {{name: bad, stage: one, script: ["sleep 1", "exit 5"]}}
  - {{name: later, stage: two, script: "echo later-$CICD_JOB"}}
"""
# click and pygments: httpx's own command line, which cicd_cli keeps from loading (its __init__)
HEAVY = ("prefect", "sqlalchemy", "docker", "fastapi", "uvicorn", "click", "pygments")


@pytest.fixture
def project(tmp_path: Path, prefect_api: str) -> Iterator[Project]:
    """A git project whose ``cicd run`` goes through a daemon; the daemon is stopped after."""
    made = Project.create(tmp_path)
    del made.env["CICD_DAEMON"]
    made.commit({".pipelines/quick.yaml": QUICK, ".pipelines/sleepers.yaml": SLEEPERS})
    yield made
    stop_daemon(made.home)


def daemon_pid(project: Project) -> int:
    """The pid in the project's daemon state file."""
    info = read_state(state_path(project.home))
    assert info is not None, "no daemon state file"
    return int(info["pid"])


def daemon_starts(project: Project) -> int:
    """How many daemons started in this home (each prints its API line to the log once)."""
    log = project.home / "daemon" / "daemon.log"
    return log.read_text().count("cicd API ") if log.exists() else 0


def shape(out: Output) -> list[str]:
    """stdout with what changes between runs (run number, times, durations, memory peaks)
    blanked."""
    lines = [re.sub(r"#\d+", "#N", line) for line in out.lines]
    # the summary's memory and cpu cells: a job of a few milliseconds may end before its first
    # measurement (an empty cell), so they are dropped rather than compared
    lines = ["│".join(line.split("│")[:5]) if "│" in line else line for line in lines]
    return [re.sub(r"\d+(\.\d+)?(ms|s)\b", "T", line) for line in lines]


def worker_pid(project: Project, pipeline: str, number: int) -> tuple[str, int]:
    """The ``worker`` of a run as (mode, pid): ``embedded`` or ``server``."""
    mode, _, pid = project.report(pipeline, number)["worker"].partition("/")[2].rpartition("-")
    return mode, int(pid)


# -- one daemon per CICD_HOME, reused ------------------------------------------------------------


@pytest.mark.docker
def test_daemon_two_runs_share_one_daemon_and_print_like_embedded(project: Project) -> None:
    commit = git(project.repo, "rev-parse", "HEAD")
    first = project.run("-p", "quick")
    pid = daemon_pid(project)
    second = project.run("-p", "quick", "--force")
    assert (first.returncode, second.returncode) == (0, 0), first.stdout + second.stdout
    assert daemon_pid(project) == pid and pid_running(pid)
    assert first.lines[0] == f"quick#1  .pipelines/quick.yaml at {commit[:12]} on main"
    assert second.lines[0] == f"quick#2  .pipelines/quick.yaml at {commit[:12]} on main"
    assert (first.stderr, second.stderr) == ("", "")
    assert worker_pid(project, "quick", 1) == ("server", pid)
    assert worker_pid(project, "quick", 2) == ("server", pid)
    assert state_path(project.home).stat().st_mode & 0o777 == 0o600
    assert daemon_starts(project) == 1

    project.env["CICD_DAEMON"] = "0"
    embedded = project.run("-p", "quick", "--force")
    assert embedded.returncode == 0, embedded.stdout + embedded.stderr
    assert worker_pid(project, "quick", 3)[0] == "embedded"
    assert shape(second) == shape(embedded)


@pytest.mark.docker
def test_daemon_cli_never_imports_the_backend_heavyweights(project: Project) -> None:
    probe = (
        "import atexit, sys\n"
        f"atexit.register(lambda: print('HEAVY', sorted(m for m in {HEAVY!r} if m in sys.modules)"
        ", file=sys.stderr))\n"
        "from cicd_cli.app import main\n"
        "sys.argv = ['cicd', 'run', '-p', 'quick']\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=project.repo,
        env=project.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("quick#1  "), done.stdout
    assert "HEAVY []" in done.stderr.splitlines(), done.stderr


@pytest.mark.docker
def test_daemon_concurrent_runs_of_a_fresh_home_start_one_daemon(project: Project) -> None:
    procs = [project.popen("run", "-p", "quick", "--force") for _ in range(2)]
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    assert sorted(out.splitlines()[0].split()[0] for out in outputs) == ["quick#1", "quick#2"]
    assert daemon_starts(project) == 1
    pid = daemon_pid(project)
    assert worker_pid(project, "quick", 1) == worker_pid(project, "quick", 2) == ("server", pid)


@pytest.mark.docker
@pytest.mark.parametrize("how", ["env", "flag"])
def test_daemon_off_runs_in_process_without_a_daemon(project: Project, how: str) -> None:
    if how == "env":
        project.env["CICD_DAEMON"] = "0"
        out = project.run("-p", "quick")
    else:
        out = project.run("-p", "quick", "--no-daemon")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.lines[0].startswith("quick#1  .pipelines/quick.yaml at ")
    assert not state_path(project.home).exists()
    assert worker_pid(project, "quick", 1)[0] == "embedded"


@pytest.mark.docker
@pytest.mark.parametrize("mode", ["daemon", "embedded"])
def test_daemon_fresh_home_without_prefect_url_starts_and_uses_its_own_prefect_server(
    project: Project, mode: str
) -> None:
    """What a new user gets: cicd starts a Prefect server for CICD_HOME and runs the flow on it.

    The server boots while the daemon (or the in-process run) imports and opens its store; the
    run must wait for it rather than fail or talk to a server that is not up yet.
    """
    del project.env["PREFECT_API_URL"]
    project.env.pop("PREFECT_HOME", None)
    if mode == "embedded":
        project.env["CICD_DAEMON"] = "0"
    try:
        out = project.run("-p", "quick", timeout=240)
        assert out.returncode == 0, out.stdout + out.stderr
        info = read_local_server(project.home)
        assert info is not None, "no local Prefect server recorded"
        # a run that ended before the server answered is mirrored into Prefect after it
        flow_runs = prefect_flow_runs(project.home, "quick#1")
        assert [(run["name"], run["state_type"]) for run in flow_runs] == [
            ("quick#1", "COMPLETED")
        ]
        assert worker_pid(project, "quick", 1)[0] == ("server" if mode == "daemon" else "embedded")

        down = project.cicd("shutdown", timeout=60)
        assert down.returncode == 0, down.stdout + down.stderr
        daemon_line = "daemon: stopped (pid " if mode == "daemon" else "daemon: not running"
        assert down.lines[0].startswith(daemon_line), down.stdout
        assert down.lines[1] == f"Prefect server: stopped (pid {info['pid']}, {info['url']})"
        assert not pid_running(int(info["pid"])) and read_local_server(project.home) is None
    finally:
        stop_daemon(project.home)
        stop_local_server(project.home)


@pytest.mark.docker
def test_shutdown_stops_daemon_after_canceling_its_run_and_leaves_a_given_prefect_server(
    project: Project, prefect_api: str
) -> None:
    with sleeping_run(project, "-p", "sleepers") as run:
        proc, ours = run.proc, run.containers
        pid = daemon_pid(project)
        down = project.cicd("shutdown", timeout=60)
        rest, _ = proc.communicate(timeout=30)
    assert down.returncode == 0, down.stdout + down.stderr
    assert down.lines == [
        f"daemon: stopped (pid {pid})",
        "Prefect server: not cicd's (PREFECT_API_URL), left running",
    ]
    assert not pid_running(pid) and not state_path(project.home).exists()
    # the daemon settled the run before closing its connections: the client saw it end
    assert proc.returncode == 1 and "Traceback" not in rest, rest
    assert rest.splitlines()[-1].startswith("sleepers#1 CANCELED in "), rest
    assert managed_containers() & ours == set()
    assert project.workspaces() == []
    report = project.report("sleepers", 1)
    assert report["status"] == "CANCELED", report
    assert {job["status"] for job in jobs(report).values()} == {"CANCELED"}
    with urllib.request.urlopen(f"{prefect_api}/health", timeout=10) as reply:
        assert reply.status == 200

    again = project.cicd("shutdown")
    assert again.lines[0] == "daemon: not running", again.stdout
    assert project.run("-p", "quick").returncode == 0  # the next run starts a new daemon


# -- a daemon that dies or retires ---------------------------------------------------------------


@pytest.mark.docker
def test_daemon_killed_is_replaced_and_its_run_settled(project: Project) -> None:
    with sleeping_run(project, "-p", "sleepers") as run:
        proc, ours = run.proc, run.containers
        killed = daemon_pid(project)
        os.kill(killed, signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1, rest
    assert "error: " in rest and "daemon.log" in rest, rest
    assert "Traceback" not in rest

    again = project.run("-p", "quick")
    assert again.returncode == 0, again.stdout + again.stderr
    assert daemon_pid(project) != killed
    assert daemon_starts(project) == 2
    report = project.report("sleepers", 1)
    assert report["status"] == "FAILED", report
    assert report["finished_at"] is not None
    assert {job["status"] for job in jobs(report).values()} == {"CANCELED"}
    left = managed_containers() & ours
    remove_containers(left)
    assert left == set(), "the new daemon did not remove the killed daemon's containers"


def test_daemon_idle_timeout_exits_and_removes_its_state_file(
    tmp_path: Path, prefect_api: str
) -> None:
    home = tmp_path / "home"
    try:
        url, token = ensure_daemon(Settings(home=home, database_url=None), idle_timeout=2)
        info = read_state(state_path(home))
        assert info is not None and (info["url"], info["token"]) == (url, token)
        pid = int(info["pid"])
        assert pid_running(pid)
        deadline = time.monotonic() + 30
        while pid_running(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not pid_running(pid), "the idle daemon is still running"
        assert not state_path(home).exists()
    finally:
        stop_daemon(home)


def test_daemon_state_file_is_reused_while_healthy(tmp_path: Path, prefect_api: str) -> None:
    home = tmp_path / "home"
    settings = Settings(home=home, database_url=None)
    try:
        first = ensure_daemon(settings)
        pid = daemon_pid_of(home)
        assert ensure_daemon(settings) == first
        assert daemon_pid_of(home) == pid
        assert json.loads(state_path(home).read_text())["pid"] == pid
        assert stop_daemon(home) is True
        assert not pid_running(pid) and not state_path(home).exists()
        assert stop_daemon(home) is False
    finally:
        stop_daemon(home)


def daemon_pid_of(home: Path) -> int:
    """The pid recorded in ``home``'s daemon state file."""
    info = read_state(state_path(home))
    assert info is not None
    return int(info["pid"])


# -- the important e2e scenarios, through the daemon -------------------------------------------


@pytest.mark.docker
def test_daemon_run_success_reports_every_job_and_stage(project: Project) -> None:
    out = project.run("-p", "quick")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "built-compile" in out.job_lines("compile")
    assert "tested-unit" in out.job_lines("unit")
    assert out.lines[-1].startswith("quick#1 SUCCESS in "), out.stdout
    report = project.report("quick", 1)
    assert report["status"] == "SUCCESS"
    assert [(s["name"], s["status"]) for s in report["stages"]] == [
        ("build", "SUCCESS"),
        ("test", "SUCCESS"),
    ]
    assert {name: (j["status"], j["exit_code"]) for name, j in jobs(report).items()} == {
        "compile": ("SUCCESS", 0),
        "unit": ("SUCCESS", 0),
    }


@pytest.mark.docker
def test_daemon_run_failure_stops_long_sibling_and_cancels_later_stages(project: Project) -> None:
    project.commit({".pipelines/failfast.yaml": textwrap.dedent(FAILFAST)})
    out = project.run("-p", "failfast", timeout=90)
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.seconds < 40, f"the run took {out.seconds:.1f}s: its sleeping job was not stopped"
    assert "later-later" not in out.stdout and "long-long" not in out.stdout
    assert out.job_lines("later") == ["CANCELED"]
    report = project.report("failfast", 1)
    assert report["status"] == "FAILED"
    assert {name: j["status"] for name, j in jobs(report).items()} == {
        "long": "CANCELED",
        "bad": "FAILED",
        "later": "CANCELED",
    }
    assert stages(report)["two"]["status"] == "CANCELED"


@pytest.mark.docker
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_daemon_run_signal_cancels_run_and_cleans_up(
    project: Project, signum: signal.Signals
) -> None:
    with sleeping_run(project, "-p", "sleepers", settle=0.5) as run:  # siblings start too
        proc, seen, ours = run.proc, run.seen, run.containers
        assert ours, "no labelled container while the job runs"
        started = time.monotonic()
        proc.send_signal(signum)
        rest, _ = proc.communicate(timeout=15)
        took = time.monotonic() - started
    output = "\n".join(seen) + "\n" + rest
    assert took < 15, output
    assert proc.returncode == 130, output
    assert "sleepers#1 canceled (interrupted)" in output
    assert "Traceback" not in output
    assert managed_containers() & ours == set(), output
    assert project.workspaces() == [], output
    report = project.report("sleepers", 1)
    assert report["status"] == "CANCELED", report
    assert {name: job["status"] for name, job in jobs(report).items()} == {
        "nap1": "CANCELED",
        "nap2": "CANCELED",
        "after": "CANCELED",
    }
    assert pid_running(daemon_pid(project)), "the daemon must outlive the canceled run"
