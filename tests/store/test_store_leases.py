"""Worker leases (``heartbeat_at``) and shipped files (``rehome_files``), on SQLite and PG."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from backend.schemas import Status
from backend.store import Store

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
STAGES = [("test", [("unit", "python:3.12", False), ("lint", "python:3.12", False)])]


def create(store: Store, key: str = "key-1") -> int:
    run_id, _ = store.create_run(
        "ci", STAGES, repo="/src/repo", branch="main", commit="abc123",
        file=".pipelines/ci.yaml", request_key=key,
    )
    return run_id


def test_lapsed_runs_lists_open_runs_whose_lease_ran_out(store: Store) -> None:
    stale, fresh, unleased, ended = (create(store, f"k{i}") for i in range(4))
    store.set_run(stale, worker="h/worker-1", heartbeat_at=T0, flow_run_id="f1")
    store.set_run(fresh, worker="h/worker-2", heartbeat_at=T0 + timedelta(seconds=40))
    store.set_run(ended, worker="h/worker-1", heartbeat_at=T0)
    store.settle_run(ended, Status.SUCCESS)

    lapsed = store.lapsed_runs(T0 + timedelta(seconds=30))

    assert lapsed == [(stale, "ci", 1, "h/worker-1", "f1")]
    assert unleased not in [row[0] for row in store.lapsed_runs(T0 + timedelta(days=1))]


def test_rehome_files_moves_log_and_artifact_paths_of_that_run_only(store: Store) -> None:
    run_id, other = create(store), create(store, "k2")
    for rid in (run_id, other):
        store.set_job(rid, "unit", status=Status.SUCCESS, log_path="/w/logs/ci/1/unit.log")
        store.add_artifact(rid, "unit", "dist/a.whl", 3, "0" * 64, "/w/artifacts/1/unit/a.whl")
    store.set_job(run_id, "lint", status=Status.SUCCESS, log_path="/elsewhere/lint.log")

    changed = store.rehome_files(run_id, "/w", "/srv/home/")

    assert changed == 2
    assert store.job_log_path("ci", 1, "unit") == "/srv/home/logs/ci/1/unit.log"
    assert store.job_log_path("ci", 1, "lint") == "/elsewhere/lint.log"
    assert store.artifact_file("ci", 1, "unit", "dist/a.whl") == "/srv/home/artifacts/1/unit/a.whl"
    assert store.artifact_file("ci", 2, "unit", "dist/a.whl") == "/w/artifacts/1/unit/a.whl"
