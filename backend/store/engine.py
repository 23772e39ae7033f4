"""Engines for the history store: SQLite tuned for many threads and processes, or PostgreSQL.

SQLite gets WAL (readers never block the writer), a busy timeout (writers wait for each other
instead of failing) and SQLAlchemy-controlled transactions, so a write transaction can start with
``BEGIN IMMEDIATE``: it takes the write lock up front, which serializes writers cleanly instead of
failing when a deferred reader tries to upgrade its lock.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

_WRITE = "cicd_write"
_BUSY_TIMEOUT_S = 60


def mask_url(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***``, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def make_engine(url: str) -> Engine:
    """An engine for ``url``; for a SQLite file, creates its folder and tunes the connections."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        _create_private(Path(database).expanduser())
    engine = create_engine(parsed, connect_args={"timeout": _BUSY_TIMEOUT_S})
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _create_private(database: Path) -> None:
    """Create the SQLite file (and its folder) readable by its owner only, if it is missing.

    The store holds what jobs printed in their errors, the runs' repositories and overrides:
    SQLite would create it 0644. Its -wal and -shm files take the database file's mode. An
    existing file keeps its mode: whoever made it may share it on purpose.
    """
    database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        # an empty file is an empty database; O_EXCL leaves an existing one alone
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Hand transaction control to SQLAlchemy (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_S * 1000}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    write = connection.get_execution_options().get(_WRITE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A connection in a write transaction, committed on success and rolled back on error."""
    with engine.connect() as connection:
        connection.execution_options(**{_WRITE: True})
        with connection.begin():
            yield connection


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection for reads; its transaction is rolled back when the block ends."""
    with engine.connect() as connection:
        yield connection
