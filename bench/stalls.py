"""How often a run stalls on the local Prefect server's SQLite lock, and what it costs.

    .venv/bin/python bench/stalls.py [--pipeline wide] [--homes 5] [--warm 2]

For each of ``--homes`` fresh CICD_HOMEs: one cold ``cicd run``, then ``--warm`` warm ones, each
timed; then the home's Prefect server log is searched for the requests it answered 503 because
SQLite said "database is locked" (cicd starts its server with PREFECT_API_LOG_RETRYABLE_ERRORS,
so each is logged with its SQL). Prefect's client retries such a request after 2 s, so a warm run
about 2 s over the others usually has one of these in its home's log.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import pipelines, tools

_SQL = re.compile(r"^\[SQL: (\w+ (?:INTO|FROM)? ?\w+)")


def lock_errors(home: Path) -> Counter[str]:
    """The statements the home's Prefect server answered 503 to, counted by their first words."""
    log = home / "prefect" / "server.log"
    found: Counter[str] = Counter()
    if not log.exists():
        return found
    waiting = False
    for line in log.read_text(errors="replace").splitlines():
        if "Encountered retryable exception" in line:
            waiting = True
        elif waiting and (match := _SQL.match(line)):
            found[match.group(1)] += 1
            waiting = False
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default="wide", choices=sorted(pipelines.PIPELINES))
    parser.add_argument("--homes", type=int, default=5, help="fresh CICD_HOMEs to try")
    parser.add_argument("--warm", type=int, default=2, help="warm runs after each cold one")
    args = parser.parse_args()

    p = pipelines.get(args.pipeline)
    repo = tools.make_repo(p, "cicd")
    warm_times: list[float] = []
    total: Counter[str] = Counter()
    try:
        for i in range(args.homes):
            home = tools.new_home()
            try:
                runs = [tools.run_cicd(repo, home) for _ in range(1 + args.warm)]
                tools.stop_cicd_home(home, remove=False)
                errors = lock_errors(home)
            finally:
                tools.stop_cicd_home(home)
            failed = [t for t in runs if not t.ok]
            if failed:
                raise SystemExit(f"cicd run failed:\n{failed[0].tail}")
            warm_times += [t.seconds for t in runs[1:]]
            total += errors
            times = " ".join(f"{t.seconds:.2f}" for t in runs[1:])
            print(
                f"home {i + 1}: cold {runs[0].seconds:.2f}s  warm {times}  "
                f"503 lock retries: {sum(errors.values())}",
                flush=True,
            )
    finally:
        shutil.rmtree(repo, ignore_errors=True)
    median = statistics.median(warm_times)
    stalled = [t for t in warm_times if t > median + 1.5]
    print(
        f"{args.pipeline}: warm median {median:.2f}s; {len(stalled)} of {len(warm_times)} warm "
        f"runs over median + 1.5 s; 503 lock retries logged: {sum(total.values())}"
    )
    for statement, count in total.most_common():
        print(f"  {count} x {statement}")


if __name__ == "__main__":
    main()
