"""The Prefect server cicd starts keeps its state on PostgreSQL when cicd's store is there.

Through the real console script: an embedded ``cicd run`` with ``CICD_DATABASE_URL`` on
PostgreSQL and no ``PREFECT_API_URL`` starts a local Prefect server whose database is
``<cicd's database>_prefect`` (created on first use), never a SQLite file; the run's flow run
is in it. Uses ``CICD_TEST_POSTGRES_URL`` (the role may create databases).
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cicd_cli.daemon import stop_daemon
from flows.prefect_api import PrefectUnavailable, prefect_postgres_url, stop_local_server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))  # not a package
from e2ekit import BUSYBOX, Project
from pgtools import drop_database

QUICK = f"""\
pipeline: {{name: quick, stages: [build], image: {BUSYBOX}}}
jobs:
  - {{name: compile, stage: build, script: "echo built"}}
"""


def test_prefect_postgres_url_follows_the_cicd_store() -> None:
    pg = "postgresql+psycopg://u:p%40ss@db:5432/cicd?options=-csearch_path%3Dx"
    assert prefect_postgres_url({"CICD_DATABASE_URL": pg}) == (
        "postgresql+asyncpg://u:p%40ss@db:5432/cicd_prefect"
    )
    assert prefect_postgres_url({"CICD_DATABASE_URL": "sqlite:////tmp/x.db"}) is None
    assert prefect_postgres_url({}) is None
    chosen = {"CICD_DATABASE_URL": pg, "PREFECT_API_DATABASE_CONNECTION_URL": "sqlite+aiosqlite:///"}
    assert prefect_postgres_url(chosen) is None  # the user's own choice wins


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh PostgreSQL database for cicd's store (and, beside it, Prefect's); both dropped."""
    base = os.environ.get("CICD_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("CICD_TEST_POSTGRES_URL is not set")
    name = f"cicd_t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
        for db in (f"{name}_prefect", name):
            drop_database(admin, db)
    finally:
        admin.dispose()


@pytest.mark.docker
@pytest.mark.postgres
def test_local_prefect_server_uses_postgres_beside_the_store(
    tmp_path: Path, database: str
) -> None:
    made = Project.create(tmp_path)
    for name in ("PREFECT_API_URL", "PREFECT_HOME", "PREFECT_API_AUTH_STRING",
                 "PREFECT_API_DATABASE_CONNECTION_URL"):  # fmt: skip
        made.env.pop(name, None)
    made.env.update(CICD_DATABASE_URL=database, CICD_DAEMON="0")
    made.commit({".pipelines/quick.yaml": QUICK})
    try:
        out = made.run("-p", "quick", timeout=300)
        assert out.returncode == 0, out.stdout + out.stderr
        assert not (made.home / "prefect" / "prefect.db").exists()  # no SQLite fallback
        engine = create_engine(make_url(database).set(database=f"{make_url(database).database}"
                                                               "_prefect"))
        try:
            with engine.connect() as connection:
                names = connection.execute(text("SELECT name FROM flow_run")).scalars().all()
        finally:
            engine.dispose()
        assert "quick#1" in names
    finally:
        stop_daemon(made.home)
        stop_local_server(made.home)


def test_ensure_prefect_database_failure_is_one_line() -> None:
    from flows.prefect_api import ensure_prefect_database

    with pytest.raises(PrefectUnavailable) as caught:
        ensure_prefect_database(
            "postgresql+asyncpg://nobody:x@127.0.0.1:1/x_prefect",
            "postgresql+psycopg://nobody:x@127.0.0.1:1/x",
        )
    message = str(caught.value)
    assert message.startswith("cannot prepare the Prefect database 'x_prefect' on 127.0.0.1: ")
    assert message.endswith("(create it, or set PREFECT_API_DATABASE_CONNECTION_URL)")
    assert "\n" not in message and "x@" not in message  # no password
