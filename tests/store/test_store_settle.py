"""``Store.settle_run``, the one place a run that cannot end by itself is ended (SQLite, PG)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from backend.errors import NotFound
from backend.schemas import Status
from backend.store import Store
from backend.store.tables import pipeline_runs

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
STAGES = [
    ("build", [("compile", "gcc:13", False)]),
    ("test", [("unit", "python:3.12", False), ("lint", "python:3.12", True)]),
]


def create(store: Store) -> int:
    run_id, _ = store.create_run(
        "ci",
        STAGES,
        repo="/src/repo",
        branch="main",
        commit="abc123",
        file=".pipelines/ci.yaml",
        request_key="key-1",
    )
    return run_id


def stored_error(store: Store, run_id: int) -> str | None:
    """The run's error column (the public schema does not show it)."""
    with store._engine.connect() as connection:
        return connection.scalar(select(pipeline_runs.c.error).where(pipeline_runs.c.id == run_id))


def test_settle_run_running_run_failed_with_error_and_open_parts_canceled(store: Store) -> None:
    run_id = create(store)
    store.set_run(run_id, status=Status.RUNNING, started_at=T0)
    store.set_stage(run_id, "build", status=Status.SUCCESS, started_at=T0, finished_at=T0)
    store.set_job(run_id, "compile", status=Status.SUCCESS, exit_code=0, finished_at=T0)
    store.set_job(run_id, "unit", status=Status.RUNNING, started_at=T0)
    at = T0 + timedelta(minutes=3)

    changed = store.settle_run(run_id, Status.FAILED, error="engine gone", at=at)

    run = store.get_run("ci", 1)
    assert changed is True
    assert (run.status, run.finished_at) == (Status.FAILED, at)
    assert stored_error(store, run_id) == "engine gone"
    assert [(s.name, s.status, s.finished_at) for s in run.stages] == [
        ("build", Status.SUCCESS, T0),
        ("test", Status.CANCELED, at),
    ]
    assert [(j.name, j.status) for s in run.stages for j in s.jobs] == [
        ("compile", Status.SUCCESS),
        ("unit", Status.CANCELED),
        ("lint", Status.CANCELED),
    ]
    assert store.open_runs() == []


def test_settle_run_if_open_keeps_a_finished_run(store: Store) -> None:
    run_id = create(store)
    store.set_run(run_id, status=Status.SUCCESS, finished_at=T0)

    changed = store.settle_run(run_id, Status.FAILED, error="late", if_open=True)

    run = store.get_run("ci", 1)
    assert changed is False
    assert (run.status, run.finished_at) == (Status.SUCCESS, T0)
    assert stored_error(store, run_id) is None
    assert {j.status for s in run.stages for j in s.jobs} == {Status.CANCELED}


def test_settle_run_without_if_open_overrides_a_finished_status(store: Store) -> None:
    run_id = create(store)
    store.set_run(run_id, status=Status.CANCELED, finished_at=T0)

    assert store.settle_run(run_id, Status.FAILED, error="crashed", at=T0) is True

    assert store.get_run("ci", 1).status is Status.FAILED


def test_settle_run_without_error_keeps_the_stored_one(store: Store) -> None:
    run_id = create(store)
    store.set_run(run_id, error="first words")

    store.settle_run(run_id, Status.CANCELED, if_open=True)

    run = store.get_run("ci", 1)
    assert run.status is Status.CANCELED
    assert stored_error(store, run_id) == "first words"
    assert run.finished_at is not None


def test_settle_run_unknown_run_not_found(store: Store) -> None:
    run_id = create(store)

    with pytest.raises(NotFound, match=f"no run with id {run_id + 99}"):
        store.settle_run(run_id + 99, Status.FAILED)


def test_settle_run_unfinished_status_value_error(store: Store) -> None:
    run_id = create(store)

    with pytest.raises(ValueError, match="finished status"):
        store.settle_run(run_id, Status.RUNNING)
    assert store.get_run("ci", 1).status is Status.PENDING
