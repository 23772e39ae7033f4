"""Stopping the process groups tests start (servers, workers): a signal, then SIGKILL if need be;
and a free loopback port for a server to listen on."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from typing import Any


def stop_group(
    proc: subprocess.Popen[Any], signum: int = signal.SIGTERM, timeout: float = 30
) -> Any:
    """Send ``signum`` to ``proc``'s process group, wait for it; SIGKILL it after ``timeout``.

    Returns what ``communicate`` read from its stdout (None when it was not piped).
    """
    os.killpg(proc.pid, signum)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
    return output


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
