"""Opening a store: migrations, schema drift, and one-line errors for unusable databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from backend.errors import StoreError
from backend.store import Store
from backend.store.migrate import alembic_config
from backend.store.tables import metadata


def test_store_open_twice_keeps_runs(store_url: str) -> None:
    with Store(store_url) as first:
        first.create_run(
            "ci", [("build", [("compile", "gcc", False)])],
            repo="r", branch=None, commit="c", file="f", request_key="k",
        )  # fmt: skip
    with Store(store_url) as second, Store(store_url) as third:
        assert [r.run for r in second.list_runs("ci").runs] == [1]
        assert third.list_pipelines().pipelines[0].runs == 1


def test_store_schema_matches_tables(store: Store) -> None:
    engine = create_engine(store.url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection)
            head = ScriptDirectory.from_config(alembic_config()).get_current_head()
            assert context.get_current_revision() == head
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_store_open_sqlite_creates_parent_folder(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'a' / 'b' / 'cicd.db'}"):
        pass

    assert (tmp_path / "a" / "b" / "cicd.db").is_file()


def test_store_open_sqlite_folder_is_file_store_error(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("")
    url = f"sqlite:///{tmp_path / 'blocker' / 'cicd.db'}"

    with pytest.raises(StoreError) as caught:
        Store(url)

    assert str(caught.value) == (
        f"cannot open the history store at {url}: File exists: {tmp_path / 'blocker'}"
    )


def test_store_open_unreachable_postgres_hides_password() -> None:
    url = "postgresql+psycopg://cicd:s3cret@127.0.0.1:1/cicd"

    with pytest.raises(StoreError) as caught:
        Store(url)

    message = str(caught.value)
    assert message.startswith(
        "cannot open the history store at postgresql+psycopg://cicd:***@127.0.0.1:1/cicd: "
    )
    assert "s3cret" not in message
    assert "\n" not in message


def test_store_open_unparsable_url_store_error() -> None:
    with pytest.raises(StoreError) as caught:
        Store("not a url")

    assert str(caught.value) == (
        "cannot open the history store at not a url: "
        "Could not parse SQLAlchemy URL from given URL string"
    )
