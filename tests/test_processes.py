"""``pid_running``: live processes count, exited and unreaped (zombie) ones do not."""

from __future__ import annotations

import os
import subprocess
import time

from backend.processes import pid_running


def test_pid_running_live_process_and_zombie() -> None:
    assert pid_running(os.getpid())
    child = subprocess.Popen(["sleep", "0"])
    deadline = time.monotonic() + 10
    while pid_running(child.pid) and time.monotonic() < deadline:
        time.sleep(0.05)  # the child exits but stays unreaped (a zombie) until wait()
    assert not pid_running(child.pid)
    child.wait()
    assert not pid_running(child.pid)
    assert not pid_running(0)
