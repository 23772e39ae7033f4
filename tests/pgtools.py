"""Dropping a PostgreSQL database a test (or the Prefect server it started) used."""

from __future__ import annotations

import time

from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError


def drop_database(admin: Engine, name: str, timeout: float = 30.0) -> None:
    """``DROP DATABASE IF EXISTS name`` once the last connection to it has closed.

    Not ``WITH (FORCE)``: that must terminate every backend on it, and an autovacuum worker
    (busy on a database a Prefect server just migrated) belongs to the superuser, which a test
    role may not signal. A plain DROP stops autovacuum workers itself; the test's own processes
    have exited, so what remains are their connections closing: retry until they have.
    """
    quoted = '"' + name.replace('"', '""') + '"'
    deadline = time.monotonic() + timeout
    while True:
        try:
            with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text(f"DROP DATABASE IF EXISTS {quoted}"))
            return
        except OperationalError:  # "is being accessed by other users"
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
