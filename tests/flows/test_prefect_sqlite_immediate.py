"""The local Prefect server begins its SQLite transactions IMMEDIATE
(flows/prefect_server.py:immediate_sqlite_transactions).

The case that failed under a burst of runs, on a real SQLite file through Prefect's own database
configuration: a transaction Prefect begins reads, another connection writes and commits, then
the transaction writes. Begun DEFERRED (Prefect's default) the write fails at once with
"database is locked"; begun IMMEDIATE the other writer waits for it, and both rows are stored.
Each case runs in a child process so the patch does not reach this one.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

_PROBE = textwrap.dedent("""
    import asyncio, json, sqlite3, sys, threading
    import sqlalchemy as sa
    from flows.prefect_server import immediate_sqlite_transactions
    if sys.argv[2] == "immediate":
        immediate_sqlite_transactions()
    from prefect.server.database.configurations import AioSqliteConfiguration

    path = sys.argv[1]
    sqlite3.connect(path).execute("CREATE TABLE t (x INTEGER)").connection.commit()

    def other_writer(done):
        con = sqlite3.connect(path, timeout=20)
        con.execute("INSERT INTO t VALUES (2)")
        con.commit()
        done.set()

    async def main():
        config = AioSqliteConfiguration(connection_url=f"sqlite+aiosqlite:///{path}")
        engine = await config.engine()
        session = await config.session(engine)
        done = threading.Event()
        error = None
        async with session:
            try:
                async with config.begin_transaction(session):
                    await session.execute(sa.text("SELECT count(*) FROM t"))
                    writer = threading.Thread(target=other_writer, args=(done,))
                    writer.start()
                    waited = not done.wait(1.0)  # IMMEDIATE: it waits for our lock
                    await session.execute(sa.text("INSERT INTO t VALUES (1)"))
            except Exception as exc:
                error = str(exc).splitlines()[0]
            writer.join(20)
        await engine.dispose()
        rows = sorted(r[0] for r in sqlite3.connect(path).execute("SELECT x FROM t"))
        print(json.dumps({"error": error, "waited": waited, "rows": rows}))

    asyncio.run(main())
""")


def probe(tmp_path: Path, mode: str) -> dict[str, object]:
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tmp_path / "prefect.db"), mode],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_prefect_sqlite_immediate_writer_waits_instead_of_failing(tmp_path: Path) -> None:
    outcome = probe(tmp_path, "immediate")
    assert outcome == {"error": None, "waited": True, "rows": [1, 2]}


def test_prefect_sqlite_immediate_deferred_default_fails(tmp_path: Path) -> None:
    # Prefect's own default: the case the patch fixes, so the test above can fail
    outcome = probe(tmp_path, "deferred")
    assert outcome["error"] is not None and "database is locked" in str(outcome["error"])
    assert outcome["waited"] is False
    assert outcome["rows"] == [2]
