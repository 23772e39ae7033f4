"""How long the local Prefect server of a fresh ``CICD_HOME`` takes to answer.

    .venv/bin/python bench/prefect_start.py [--runs 3]

Each run starts the server for a new temporary home (``flows.prefect_api.start_local_server``:
the launcher, the migrated template database, until ``/health`` answers), prints the seconds,
and stops it. The median is printed last. A figure for people, not a test.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="starts to measure (default 3)")
    args = parser.parse_args()
    from flows.prefect_api import start_local_server, stop_local_server

    seconds = []
    for i in range(args.runs):
        home = Path(tempfile.mkdtemp(prefix="cicd-bench-prefect-"))
        try:
            began = time.monotonic()
            start_local_server(home)
            seconds.append(time.monotonic() - began)
            print(f"start {i + 1}/{args.runs}: {seconds[-1]:.2f}s", flush=True)
        finally:
            stop_local_server(home)
            shutil.rmtree(home, ignore_errors=True)
    print(f"median of {args.runs}: {statistics.median(seconds):.2f}s to healthy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
