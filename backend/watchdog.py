"""Run a background server and stop it once no process has used it for a while.

``python -m backend.watchdog --leases DIR --idle SECONDS --lock FILE --state FILE -- COMMAND...``
starts ``COMMAND`` (the local Prefect server) as its child and watches the lease folder
``DIR`` (``backend.processes.Leases``: one file per process using the server). Once no lease
holder has been alive for ``SECONDS``, it takes the lock ``FILE`` (which users hold while they
take a lease, so none is between its check and its use), removes the state file ``FILE`` if it
still records the watchdog, stops ``COMMAND`` (SIGTERM, SIGKILL after 10 s) and exits 0. When
``COMMAND`` exits by itself, the watchdog exits with its status; SIGTERM or SIGINT to the
watchdog is passed on to ``COMMAND``. The watchdog is recorded in the state file in place of
the server: both are in one process group, which ``stop_process`` signals as a whole.

Imports nothing heavy: it stays a few MB beside a server of a few hundred.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from backend.processes import Leases, ProcessState, file_lock

STOP_TIMEOUT = 10.0


def _stop(child: subprocess.Popen[bytes]) -> None:
    child.terminate()
    try:
        child.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def watch(
    command: list[str], *, leases: Path, idle: float, lock: Path, state: Path, step: float
) -> int:
    """Run ``command`` until it exits or has had no live lease holder for ``idle`` seconds."""
    child = subprocess.Popen(command)

    def forward(signum: int, frame: FrameType | None) -> None:
        child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    users = Leases(leases)
    last_used = time.monotonic()
    while True:
        try:
            code = child.wait(step)
        except subprocess.TimeoutExpired:
            pass
        else:
            ProcessState(state).forget(os.getpid())
            return code
        if users.alive():
            last_used = time.monotonic()
            continue
        if time.monotonic() - last_used < idle:
            continue
        with file_lock(lock):
            if users.alive():  # a user came while we waited for the lock
                last_used = time.monotonic()
                continue
            ProcessState(state).forget(os.getpid())
            print(f"cicd: no user for {idle:g}s: stopping the server", file=sys.stderr, flush=True)
            _stop(child)
            return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line (see the module's docstring) and watch."""
    parser = argparse.ArgumentParser(prog="python -m backend.watchdog")
    parser.add_argument("--leases", type=Path, required=True)
    parser.add_argument("--idle", type=float, required=True)
    parser.add_argument("--lock", type=Path, required=True)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command or args.idle <= 0:
        parser.error("a command after -- and --idle > 0 are required")
    step = min(5.0, max(0.2, args.idle / 4))
    return watch(
        command, leases=args.leases, idle=args.idle, lock=args.lock, state=args.state, step=step
    )


if __name__ == "__main__":
    sys.exit(main())
