"""Reading history back: pipelines, runs, stages, jobs, artifacts, and what is not there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backend.errors import NotFound
from backend.schemas import ArtifactPublic, Status
from backend.store import Store

STAGES = [
    ("build", [("compile", "gcc:14", False)]),
    ("test", [("unit", "python:3.12", False), ("lint", "python:3.12", True)]),
]
T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def create(store: Store, pipeline: str = "ci") -> int:
    run_id, _ = store.create_run(
        pipeline,
        STAGES,
        repo="/src/repo",
        branch=None,
        commit="abc123",
        file=".pipelines/ci.yaml",
        request_key=f"key-{pipeline}",
    )
    return run_id


def test_list_pipelines_empty_store(store: Store) -> None:
    assert store.list_pipelines().model_dump(mode="json") == {"pipelines": [], "next": None}


def test_list_pipelines_summaries_by_name(store: Store) -> None:
    create(store, "zeta")
    first = create(store, "alpha")
    second = create(store, "alpha")
    store.set_run(first, status=Status.FAILED, started_at=T0)
    store.set_run(second, status=Status.RUNNING, started_at=T0 + timedelta(hours=1))

    assert store.list_pipelines().model_dump(mode="json") == {
        "pipelines": [
            {
                "pipeline": "alpha",
                "runs": 2,
                "last_run": 2,
                "last_status": "RUNNING",
                "last_started_at": "2025-03-01T13:00:00+00:00",
            },
            {
                "pipeline": "zeta",
                "runs": 1,
                "last_run": 1,
                "last_status": "PENDING",
                "last_started_at": None,
            },
        ],
        "next": None,
    }


def test_list_runs_newest_first_without_stages(store: Store) -> None:
    first = create(store)
    create(store)
    store.set_run(first, status=Status.SUCCESS, started_at=T0, finished_at=T0, worker="w")

    assert store.list_runs("ci").model_dump(mode="json") == {
        "pipeline": "ci",
        "runs": [
            {
                "pipeline": "ci",
                "run": 2,
                "status": "PENDING",
                "commit": "abc123",
                "branch": None,
                "started_at": None,
                "finished_at": None,
                "worker": None,
            },
            {
                "pipeline": "ci",
                "run": 1,
                "status": "SUCCESS",
                "commit": "abc123",
                "branch": None,
                "started_at": "2025-03-01T12:00:00+00:00",
                "finished_at": "2025-03-01T12:00:00+00:00",
                "worker": "w",
            },
        ],
        "next": None,
    }


def test_list_runs_limit_keeps_newest(store: Store) -> None:
    for _ in range(3):
        create(store)

    assert [r.run for r in store.list_runs("ci", limit=2).runs] == [3, 2]
    assert store.list_runs("ci", limit=0).runs == []


def test_get_stage_jobs_in_plan_order(store: Store) -> None:
    create(store)

    stage = store.get_stage("ci", 1, "test")

    assert (stage.name, [j.name for j in stage.jobs]) == ("test", ["unit", "lint"])


def test_get_job_one_job(store: Store) -> None:
    create(store)

    assert store.get_job("ci", 1, "lint").model_dump(mode="json") == {
        "name": "lint",
        "status": "PENDING",
        "allow_failure": True,
        "exit_code": None,
        "image": "python:3.12",
        "started_at": None,
        "finished_at": None,
        "allowed": False,
        "error": None,
        "tests": None,
        "junit": None,
        "memory_peak_bytes": None,
        "cpu_seconds": None,
        "needs": None,
        "reused_from": None,
    }


def test_run_id_of_each_pipeline_run(store: Store) -> None:
    other = create(store, "other")
    run_id = create(store)

    assert store.run_id("ci", 1) == run_id
    assert store.run_id("other", 1) == other


def test_artifacts_listed_by_job_order_then_path(store: Store) -> None:
    run_id = create(store)
    store.add_artifact(run_id, "unit", "reports/junit.xml", 120, "b" * 64, "/store/2")
    store.add_artifact(run_id, "compile", "build/app", 4096, "a" * 64, "/store/1")
    store.add_artifact(run_id, "compile", "build/app.map", 10, "c" * 64, "/store/3")

    assert store.list_artifacts("ci", 1) == [
        ArtifactPublic(job="compile", path="build/app", size=4096, sha256="a" * 64),
        ArtifactPublic(job="compile", path="build/app.map", size=10, sha256="c" * 64),
        ArtifactPublic(job="unit", path="reports/junit.xml", size=120, sha256="b" * 64),
    ]
    assert [a.path for a in store.list_artifacts("ci", 1, job="unit")] == ["reports/junit.xml"]
    assert store.list_artifacts("ci", 1, job="lint") == []
    assert store.artifact_file("ci", 1, "compile", "build/app") == "/store/1"


def test_add_artifact_same_path_replaces_record(store: Store) -> None:
    run_id = create(store)
    store.add_artifact(run_id, "compile", "app", 1, "a" * 64, "/store/1")

    store.add_artifact(run_id, "compile", "app", 5_000_000_000, "b" * 64, "/store/2")

    assert store.list_artifacts("ci", 1) == [
        ArtifactPublic(job="compile", path="app", size=5_000_000_000, sha256="b" * 64)
    ]
    assert store.artifact_file("ci", 1, "compile", "app") == "/store/2"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.list_runs("nope"), "no runs of pipeline 'nope'"),
        (lambda s: s.list_runs("nope", limit=0), "no runs of pipeline 'nope'"),
        (lambda s: s.get_run("ci", 3), "no run 'ci#3'"),
        (lambda s: s.get_run("nope", 1), "no run 'nope#1'"),
        (lambda s: s.get_stage("ci", 3, "build"), "no run 'ci#3'"),
        (lambda s: s.get_stage("ci", 1, "deploy"), "no stage 'deploy' in run 'ci#1'"),
        (lambda s: s.get_job("ci", 3, "unit"), "no run 'ci#3'"),
        (lambda s: s.get_job("ci", 1, "nope"), "no job 'nope' in run 'ci#1'"),
        (lambda s: s.run_id("ci", 3), "no run 'ci#3'"),
        (lambda s: s.job_log_path("ci", 1, "nope"), "no job 'nope' in run 'ci#1'"),
        (lambda s: s.job_log_path("ci", 3, "unit"), "no run 'ci#3'"),
        (lambda s: s.list_artifacts("ci", 3), "no run 'ci#3'"),
        (lambda s: s.list_artifacts("ci", 1, job="nope"), "no job 'nope' in run 'ci#1'"),
        (lambda s: s.artifact_file("ci", 3, "unit", "a"), "no run 'ci#3'"),
        (lambda s: s.artifact_file("ci", 1, "nope", "a"), "no job 'nope' in run 'ci#1'"),
        (
            lambda s: s.artifact_file("ci", 1, "unit", "missing.txt"),
            "no artifact 'missing.txt' of job 'unit' in run 'ci#1'",
        ),
    ],
)
def test_queries_missing_target_not_found(store: Store, call, message: str) -> None:
    create(store)

    with pytest.raises(NotFound) as caught:
        call(store)

    assert str(caught.value) == message
