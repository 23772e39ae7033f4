"""How long one page of a run list takes when a pipeline has 100,000 runs (goal: under 100 ms).

    .venv/bin/python bench/pagination.py [--runs 100000] [--others 100000] [--limit 50]
                                         [--repeat 20] [--url postgresql+psycopg://...]
                                         [--without-indexes]

Opens a temporary SQLite history store (or the empty PostgreSQL database of ``--url``), brings it
to the latest schema, inserts ``--runs`` runs of pipeline ``big`` and ``--others`` runs spread
over ten other pipelines (interleaved by id, as a busy server records them), then prints the
median wall time over ``--repeat`` calls of ``Store.list_runs`` (the query ``GET /runs`` makes)
for: the first page of ``big``, a page in its middle (a cursor 50,000 runs deep), its last page,
the first FAILED page of ``big``, and the first page across every pipeline.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, text

from backend.schemas import Status
from backend.store import Store, queries
from backend.store.queries import encode_cursor
from backend.store.tables import pipeline_runs

BATCH = 5000


def fill(store: Store, runs: int, others: int) -> None:
    """Insert the runs straight into ``pipeline_runs`` (no stages: a list never reads them)."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    numbers: dict[str, int] = {}
    total = runs + others
    every = max(1, total // max(others, 1)) if others else total + 1
    rows = []
    big_left, other_left = runs, others
    for i in range(total):
        if other_left and (i % every == every - 1 or not big_left):
            pipeline, other_left = f"other-{i % 10}", other_left - 1
        else:
            pipeline, big_left = "big", big_left - 1
        numbers[pipeline] = numbers.get(pipeline, 0) + 1
        rows.append({
            "pipeline": pipeline, "number": numbers[pipeline],
            "status": Status.FAILED.value if i % 7 == 0 else Status.SUCCESS.value,
            "repo": "https://git.example.com/team/app.git", "branch": "main" if i % 2 else "dev",
            "commit": f"{i:040x}", "file": ".pipelines/pipeline.yaml", "request_key": f"k{i}",
            "overrides": "[]", "created_at": start + timedelta(seconds=i),
            "started_at": start + timedelta(seconds=i), "worker": "bench/worker-1",
        })
        if len(rows) == BATCH:
            _insert(store, rows)
            rows = []
    if rows:
        _insert(store, rows)


def _insert(store: Store, rows: list[dict[str, object]]) -> None:
    with store._engine.begin() as connection:
        connection.execute(insert(pipeline_runs), rows)


def median_ms(call: Callable[[], object], repeat: int) -> float:
    """The median wall time of ``call`` in milliseconds (one warm-up call first)."""
    call()
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def main() -> None:
    """Parse the options, fill a store, time the pages."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--others", type=int, default=100_000)
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--url", help="an empty PostgreSQL database instead of SQLite")
    parser.add_argument(
        "--without-indexes", action="store_true",
        help="drop migration 0004's two run indexes first, to see what they are worth",
    )
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cicd-bench-pages-") as folder:
        url = options.url or f"sqlite:///{Path(folder) / 'cicd.db'}"
        with Store(url) as store:
            began = time.perf_counter()
            fill(store, options.runs, options.others)
            filled = time.perf_counter() - began
            if options.without_indexes:
                with store._engine.begin() as connection:
                    for index in ("ix_pipeline_runs_pipeline_id", "ix_pipeline_runs_status_id"):
                        connection.execute(text(f"DROP INDEX {index}"))
            middle = store.list_runs("big", options.runs // 2).runs[-1]
            with store._engine.connect() as connection:
                middle_id = queries.run_id(connection, "big", middle.run)
            cursor = encode_cursor("runs", middle_id)
            last = encode_cursor("runs", options.limit + 1)
            cases = {
                "first page of big": lambda: store.list_runs("big", options.limit),
                "page 50,000 runs deep": lambda: store.list_runs(
                    "big", options.limit, cursor=cursor
                ),
                "last page of big": lambda: store.list_runs("big", options.limit, cursor=last),
                "first FAILED page of big": lambda: store.list_runs(
                    "big", options.limit, status=Status.FAILED
                ),
                "first page, every pipeline": lambda: store.list_runs(None, options.limit),
                "first page, branch dev": lambda: store.list_runs(
                    None, options.limit, branch="dev"
                ),
            }
            result = {
                "store": url.split(":", 1)[0],
                "runs_of_big": options.runs,
                "other_runs": options.others,
                "limit": options.limit,
                "fill_seconds": round(filled, 1),
                "indexes_0004": not options.without_indexes,
                "median_ms": {name: round(median_ms(call, options.repeat), 2)
                              for name, call in cases.items()},
            }
            print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
