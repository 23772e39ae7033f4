"""Whether a process still runs: shared by the daemon, the Prefect server and run settling."""

from __future__ import annotations

import os
from pathlib import Path


def pid_running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (a killed child nobody reaped).

    A zombie counts as gone: where PID 1 never reaps, a killed daemon or server would otherwise
    look alive for ever.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): trust kill(0)
    return stat.rpartition(")")[2].split()[:1] != ["Z"]
