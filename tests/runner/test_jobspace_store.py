"""The store's side of artifacts between jobs, on SQLite and PostgreSQL: name, expiry and kind
recorded with each file, the expired ones listed and deleted (what ``cicd gc`` relies on)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from backend import jobspace
from backend.store import Store
from backend.store.tables import artifacts

POSTGRES_ENV = "CICD_TEST_POSTGRES_URL"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty store on each backend (PostgreSQL: a schema of its own, dropped after)."""
    if request.param == "sqlite":
        with Store(f"sqlite:///{tmp_path / 'cicd.db'}") as opened:
            yield opened
        return
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"{POSTGRES_ENV} is not set")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        with Store(url.render_as_string(hide_password=False)) as opened:
            yield opened
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


def _run(store: Store) -> int:
    run_id, _ = store.create_run(
        "p", [("build", [("a", "img", False), ("b", "img", False)])],
        repo="r", branch=None, commit="c", file="f", request_key=uuid.uuid4().hex,
    )  # fmt: skip
    return run_id


def test_store_artifact_details_recorded_and_expired_listed(store: Store) -> None:
    run_id = _run(store)
    store.add_artifact(run_id, "a", "old.txt", 1, "0" * 64, "/s/old", name="dist",
                       expires_at=NOW - timedelta(seconds=1))  # fmt: skip
    store.add_artifact(run_id, "a", "now.txt", 1, "0" * 64, "/s/now", expires_at=NOW)
    store.add_artifact(run_id, "b", "later.txt", 1, "0" * 64, "/s/later",
                       expires_at=NOW + timedelta(days=1))  # fmt: skip
    store.add_artifact(run_id, "b", ".reports/dotenv/b.env", 1, "0" * 64, "/s/env", kind="dotenv")
    expired = store.expired_artifacts(NOW)
    assert [path for _, path in expired] == ["/s/old", "/s/now"]
    with store._engine.connect() as connection:  # the columns themselves, as migrated
        rows = connection.execute(
            select(artifacts.c.path, artifacts.c.name, artifacts.c.kind).order_by(artifacts.c.id)
        ).all()
    assert [tuple(r) for r in rows] == [
        ("old.txt", "dist", "file"),
        ("now.txt", None, "file"),
        ("later.txt", None, "file"),
        (".reports/dotenv/b.env", None, "dotenv"),
    ]
    assert store.delete_artifacts([i for i, _ in expired]) == 2
    assert store.expired_artifacts(NOW) == []
    assert [a.path for a in store.list_artifacts("p", 1)] == [".reports/dotenv/b.env", "later.txt"]


def test_remove_expired_with_a_real_store_removes_files_and_rows(
    store: Store, tmp_path: Path
) -> None:
    run_id = _run(store)
    root = tmp_path / "artifacts"
    files = {name: root / "1" / "a" / name for name in ("gone.txt", "kept.txt")}
    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("12345")
    store.add_artifact(run_id, "a", "gone.txt", 5, "0" * 64, str(files["gone.txt"]),
                       expires_at=NOW - timedelta(hours=1))  # fmt: skip
    store.add_artifact(run_id, "a", "kept.txt", 5, "0" * 64, str(files["kept.txt"]))
    done = jobspace.remove_expired(store, root, NOW)
    assert (done.files, done.bytes, done.outside) == (1, 5, 0)
    assert not files["gone.txt"].exists() and files["kept.txt"].exists()
    assert [a.path for a in store.list_artifacts("p", 1)] == ["kept.txt"]
