"""The local Prefect server's process: ``python -m flows.prefect_server --host H --port P``.

What ``prefect server start`` does in the foreground (one uvicorn worker serving Prefect's app
with its services, settings from the environment), without loading Prefect's command line
first: a cold start waits for this process, and the CLI's own imports cost ~0.5 s of it.
``flows.prefect_api`` starts it with the environment it needs.

On SQLite, every transaction Prefect's server begins is ``BEGIN IMMEDIATE``
(:func:`immediate_sqlite_transactions`): writers queue for the lock instead of failing with
"database is locked", which Prefect's client retries only after ~2 s.
"""

from __future__ import annotations

import argparse
from typing import Any


def immediate_sqlite_transactions() -> None:
    """Begin every transaction Prefect's server begins on SQLite with ``BEGIN IMMEDIATE``.

    Prefect begins them ``DEFERRED``: a transaction that reads, then writes after another
    connection committed, fails at once with "database is locked" (SQLite cannot upgrade a
    snapshot that is out of date, and does not wait for it: ``busy_timeout`` is not consulted).
    Under a burst of 20 runs that was ~50 flow and task run creations, each answered 503 and
    sent again by Prefect's client ~2 s later. ``IMMEDIATE`` takes the write lock when the
    transaction begins, where SQLite waits for it (``busy_timeout``), so writers queue instead
    of failing. Transactions Prefect begins are its writes (reads use sessions without one), so
    little that only reads is serialised.
    """
    from contextlib import asynccontextmanager

    from prefect.server.database.configurations import AioSqliteConfiguration

    begin = AioSqliteConfiguration.begin_transaction

    @asynccontextmanager
    async def begin_immediate(self: Any, session: Any, with_for_update: bool = False) -> Any:
        async with begin(self, session, with_for_update=True) as transaction:
            yield transaction

    AioSqliteConfiguration.begin_transaction = begin_immediate  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> None:
    """Serve Prefect's API, UI and services on ``--host``/``--port`` until stopped."""
    parser = argparse.ArgumentParser(prog="python -m flows.prefect_server")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)

    import uvicorn
    from prefect.server.api.server import create_app
    from prefect.settings import get_current_settings

    settings = get_current_settings().server
    immediate_sqlite_transactions()
    uvicorn.run(
        app=create_app(final=True),
        host=args.host,
        port=args.port,
        timeout_keep_alive=settings.api.keepalive_timeout,
        ws_ping_interval=settings.api.websocket_ping_interval,
        ws_ping_timeout=settings.api.websocket_ping_timeout,
        log_level=settings.logging_level.lower(),
    )


if __name__ == "__main__":
    main()
