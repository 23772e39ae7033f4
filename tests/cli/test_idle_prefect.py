"""The local Prefect server cicd starts does not idle for ever (cicd_cli/daemon.py,
flows/prefect_api.py, backend/watchdog.py), through the real console script and processes.

- the daemon retires after ``CICD_DAEMON_IDLE_TIMEOUT`` and stops its home's Prefect server with it;
- without a daemon, the server's watchdog stops it ``CICD_IDLE_TIMEOUT`` seconds after the last
  process using it (an embedded ``cicd run``) has exited;
- while a process uses it (holds a lease), it stays up.

Each test starts its own Prefect server for a fresh ``CICD_HOME`` (no ``PREFECT_API_URL``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.processes import pid_running
from cicd_cli.daemon import read_state, state_path, stop_daemon
from flows.prefect_api import read_local_server, server_state_file, stop_local_server, users

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))  # not a package
from e2ekit import BUSYBOX, CICD, Project, own_prefect_project

QUICK = f"""\
pipeline: {{name: quick, stages: [build], image: {BUSYBOX}}}
jobs:
  - {{name: compile, stage: build, script: "echo built"}}
"""


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    """A project whose cicd starts its own Prefect server; daemon and server stopped after."""
    made = own_prefect_project(tmp_path, {".pipelines/quick.yaml": QUICK})
    yield made
    stop_daemon(made.home)
    stop_local_server(made.home)


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def _wait_gone(pid: int, timeout: float) -> float:
    """Seconds until process group ``pid`` (the server's watchdog and the server) is gone."""
    begun = time.monotonic()
    while time.monotonic() - begun < timeout:
        if not pid_running(pid) and _group_gone(pid):
            return time.monotonic() - begun
        time.sleep(0.2)
    raise AssertionError(f"process group {pid} still runs after {timeout}s")


@pytest.mark.docker
def test_idle_daemon_exits_and_stops_its_prefect_server(project: Project) -> None:
    project.env.update(CICD_DAEMON_IDLE_TIMEOUT="3", CICD_IDLE_TIMEOUT="600")
    out = project.run("-p", "quick", timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    daemon = read_state(state_path(project.home))
    server = read_local_server(project.home)
    assert daemon is not None and server is not None
    assert pid_running(int(daemon["pid"])) and pid_running(int(server["pid"]))
    # the watchdog's own timeout (600 s) is far off: the daemon's retirement stops the server
    _wait_gone(int(daemon["pid"]), 60)
    took = _wait_gone(int(server["pid"]), 30)
    assert took < 20, f"the Prefect server outlived its daemon by {took:.1f}s"
    assert read_local_server(project.home) is None
    assert not server_state_file(project.home).exists()
    assert not state_path(project.home).exists()


@pytest.mark.docker
def test_idle_prefect_server_without_daemon_exits_after_its_last_user(project: Project) -> None:
    project.env.update(CICD_DAEMON="0", CICD_IDLE_TIMEOUT="4")
    out = project.run("-p", "quick", timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "quick#1 SUCCESS" in out.stdout
    server = read_local_server(project.home)
    assert server is not None, "the embedded run's Prefect server already stopped"
    assert server["idle_timeout"] == 4
    took = _wait_gone(int(server["pid"]), 60)
    assert took < 30
    assert read_local_server(project.home) is None
    assert (
        "no user for 4s: stopping the server"
        in (project.home / "prefect" / "server.log").read_text()
    )
    assert users(project.home).alive() == []
    again = project.run("-p", "quick", timeout=240)  # the next command starts a new one
    assert again.returncode == 0, again.stdout + again.stderr
    renewed = read_local_server(project.home)
    assert renewed is not None and renewed["pid"] != server["pid"]


def test_idle_prefect_server_stays_while_a_user_lives(project: Project) -> None:
    """A process holding the server (as ``cicd worker`` or ``cicd server`` do) keeps it up."""
    env = {**project.env, "CICD_IDLE_TIMEOUT": "2"}
    user = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from flows.prefect_api import configure_prefect
        print(configure_prefect(Path({str(project.home)!r})), flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen(
        [sys.executable, "-c", user],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        server = read_local_server(project.home)
        assert server is not None and server["url"] == url
        assert users(project.home).alive() == [proc.pid]
        time.sleep(8)  # four idle timeouts: the lease holder keeps it
        assert read_local_server(project.home) == server
        proc.kill()
        proc.wait()
        took = _wait_gone(int(server["pid"]), 30)
        assert 1.0 <= took < 15  # at least one idle timeout after its user went
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_idle_prefect_server_stays_while_a_worker_runs(project: Project) -> None:
    """``cicd worker`` (it becomes ``prefect worker`` by exec) keeps its lease and its server."""
    project.env.update(CICD_IDLE_TIMEOUT="2")
    worker = subprocess.Popen(
        [str(CICD), "worker", "--pool", "idle-test"],
        cwd=project.repo,
        env=project.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while worker.pid not in users(project.home).alive():
            assert worker.poll() is None, "cicd worker exited"
            assert time.monotonic() < deadline, "cicd worker took no lease"
            time.sleep(0.5)
        server = read_local_server(project.home)
        assert server is not None
        exe = Path(f"/proc/{worker.pid}/cmdline").read_bytes()
        while b"prefect" not in exe.split(b"\0")[1]:  # until the exec into `prefect worker`
            assert time.monotonic() < deadline, exe
            time.sleep(0.5)
            exe = Path(f"/proc/{worker.pid}/cmdline").read_bytes()
        time.sleep(6)  # three idle timeouts after the exec: the lease is the same process's
        assert users(project.home).alive() == [worker.pid]
        assert read_local_server(project.home) == server
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        took = _wait_gone(int(server["pid"]), 30)
        assert took < 15
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
