"""``backend.processes``: the one helper behind the daemon, the local Prefect server and workers.

Real processes throughout: state files on disk, locks taken by another process, children
spawned, probed, stopped, and a recorded pid whose start time no longer matches.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from backend.processes import (
    Leases,
    ProcessState,
    idle_timeout,
    pid_running,
    same_process,
    spawn,
    start_time,
    stop_process,
    wait_for,
    write_json_atomic,
)

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_write_json_atomic_is_0600_and_leaves_no_partial(tmp_path: Path) -> None:
    path = tmp_path / "state" / "x.json"
    write_json_atomic(path, {"pid": 1, "url": "u"})
    assert json.loads(path.read_text()) == {"pid": 1, "url": "u"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with pytest.raises(TypeError):
        write_json_atomic(path, {"pid": object()})  # cannot be written: the old file stays whole
    assert json.loads(path.read_text()) == {"pid": 1, "url": "u"}
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.json"]


def test_process_state_lock_excludes_another_process(tmp_path: Path) -> None:
    state = ProcessState(tmp_path / "s.json")
    holder = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from backend.processes import ProcessState
        with ProcessState(Path({str(state.path)!r})).locked():
            print("held", flush=True)
            time.sleep(1.5)
    """)
    proc = subprocess.Popen(
        [sys.executable, "-c", holder], stdout=subprocess.PIPE, preexec_fn=_default_sigint
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"held"
        begun = time.monotonic()
        with state.locked():
            waited = time.monotonic() - begun
        assert waited > 0.8, f"the lock was not exclusive (waited {waited:.2f}s)"
    finally:
        proc.wait(10)
    assert stat.S_IMODE(state.lock_path.stat().st_mode) == 0o600


def test_process_state_reused_pid_is_not_alive_and_not_signalled(tmp_path: Path) -> None:
    other = subprocess.Popen(SLEEPER, start_new_session=True)
    try:
        state = ProcessState(tmp_path / "s.json")
        info = state.record(other.pid, url="http://x")
        assert info["started"] == start_time(other.pid)
        assert state.alive() is not None
        # the same pid with another start time: the recorded process died, its pid was reused
        write_json_atomic(state.path, {**info, "started": info["started"] - 1})
        assert state.alive() is None
        assert not same_process(other.pid, info["started"] - 1)
        assert stop_process(other.pid, started=info["started"] - 1, timeout=1) is False
        assert other.poll() is None, "an unrelated process with a reused pid was signalled"
    finally:
        other.kill()
        other.wait()


def test_process_state_forget_only_its_own_pid(tmp_path: Path) -> None:
    state = ProcessState(tmp_path / "s.json")
    state.record(os.getpid())
    state.forget(os.getpid() + 1)
    assert state.read() is not None
    state.forget(os.getpid())
    assert state.read() is None
    state.path.write_text("{not json")
    assert state.read() is None
    state.path.write_text('{"pid": "12"}')
    assert state.read() is None


def test_wait_for_sleeps_between_failed_probes() -> None:
    calls = 0

    def refused() -> None:
        nonlocal calls
        calls += 1  # fails at once, like a connection refused

    cpu, wall = time.process_time(), time.monotonic()
    assert wait_for(refused, alive=lambda: True, timeout=1.0, interval=0.1) is None
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    assert 1.0 <= wall < 2.0
    assert calls <= 12, f"{calls} probes in 1 s: no sleep between them"
    assert cpu < 0.2, f"waiting used {cpu:.2f}s of CPU"


def test_wait_for_stops_when_the_process_dies_and_returns_the_value() -> None:
    begun = time.monotonic()
    assert wait_for(lambda: None, alive=lambda: False, timeout=30) is None
    assert time.monotonic() - begun < 1
    answers = iter([None, None, 200])
    assert wait_for(lambda: next(answers), alive=lambda: True, timeout=5, interval=0.01) == 200


def test_spawn_and_stop_process_reach_the_whole_group(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "child.log"
    script = textwrap.dedent("""
        import subprocess, sys, time
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print(grandchild.pid, flush=True)
        time.sleep(60)
    """)
    proc = spawn([sys.executable, "-c", script], env=dict(os.environ), log=log)
    assert os.getpgid(proc.pid) == proc.pid  # a session (and process group) of its own
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    grandchild = wait_for(
        lambda: int(log.read_text().split()[0]) if log.read_text().strip() else None,
        alive=lambda: proc.poll() is None,
        timeout=20,
    )
    assert grandchild is not None
    assert stop_process(proc.pid, started=start_time(proc.pid), timeout=5) is True
    assert proc.poll() is not None, "the child was not reaped"
    assert (
        wait_for(
            lambda: True if not pid_running(grandchild) else None, alive=lambda: True, timeout=5
        )
        is True
    )
    assert stop_process(proc.pid, timeout=1) is False  # gone: nothing to stop


def test_stop_process_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    script = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    log = tmp_path / "stubborn.log"
    proc = spawn([sys.executable, "-c", script], env=dict(os.environ), log=log)
    assert wait_for(
        lambda: True if "ready" in log.read_text() else None,
        alive=lambda: proc.poll() is None,
        timeout=20,
    )
    begun = time.monotonic()
    assert stop_process(proc.pid, timeout=0.5) is True
    took = time.monotonic() - begun
    assert not pid_running(proc.pid)  # it ignored SIGTERM: SIGKILL ended it after the timeout
    assert 0.5 <= took < 5
    proc.poll()


def test_stop_process_refuses_an_unexpected_command() -> None:
    other = subprocess.Popen(SLEEPER, start_new_session=True)
    try:
        assert stop_process(other.pid, timeout=1, expected=lambda pid: False) is False
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_leases_count_live_holders_and_drop_stale_ones(tmp_path: Path) -> None:
    leases = Leases(tmp_path / "users")
    assert leases.alive() == []
    leases.hold()
    child = subprocess.Popen(SLEEPER)
    leases.hold(child.pid)
    (leases.folder / ".123.tmp").write_text("partial")  # a lease being written: not counted
    (leases.folder / "999999999").write_text("garbage")
    assert sorted(leases.alive()) == sorted([os.getpid(), child.pid])
    child.kill()
    child.wait()
    assert leases.alive() == [os.getpid()]
    assert not (leases.folder / str(child.pid)).exists()
    assert not (leases.folder / "999999999").exists()
    leases.drop()
    assert leases.alive() == []


def test_idle_timeout_specific_setting_then_general_then_default() -> None:
    assert idle_timeout({}) == 1800
    assert idle_timeout({"CICD_IDLE_TIMEOUT": "5"}) == 5
    env = {"CICD_IDLE_TIMEOUT": "5", "CICD_DAEMON_IDLE_TIMEOUT": "7"}
    assert idle_timeout(env, "CICD_DAEMON_IDLE_TIMEOUT") == 7
    assert idle_timeout({"CICD_IDLE_TIMEOUT": "-3"}) == 0
    for bad in ("soon", "nan", "inf"):
        with pytest.raises(ValueError, match=f"CICD_IDLE_TIMEOUT='{bad}'"):
            idle_timeout({"CICD_IDLE_TIMEOUT": bad})
