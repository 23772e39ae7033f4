"""Recording runs: creation, numbering, atomicity, updates, finishing and duplicates."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import pytest

from backend.errors import NotFound, StoreError
from backend.schemas import Status
from backend.store import Store

STAGES = [
    ("build", [("compile", "gcc:14", False)]),
    ("test", [("unit", "python:3.12", False), ("lint", "python:3.12", True)]),
]
T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def create(
    store: Store, pipeline: str = "ci", key: str = "key-1", stages=STAGES
) -> tuple[int, int]:
    return store.create_run(
        pipeline,
        stages,
        repo="/src/repo",
        branch="main",
        commit="abc123",
        file=".pipelines/ci.yaml",
        request_key=key,
        overrides=["pipeline.image=alpine:3.20"],
    )


def test_create_run_round_trip_exact_json(store: Store) -> None:
    run_id, number = create(store)
    store.set_run(run_id, status=Status.RUNNING, started_at=T0, worker="host/worker-1")
    store.set_stage(
        run_id, "build", status=Status.SUCCESS, started_at=T0, finished_at=T0 + timedelta(seconds=5)
    )
    store.set_job(
        run_id,
        "compile",
        status=Status.SUCCESS,
        exit_code=0,
        started_at=T0,
        finished_at=T0 + timedelta(seconds=5),
    )

    assert number == 1
    assert store.get_run("ci", 1).model_dump(mode="json") == {
        "pipeline": "ci",
        "run": 1,
        "status": "RUNNING",
        "commit": "abc123",
        "branch": "main",
        "started_at": "2025-03-01T12:00:00+00:00",
        "finished_at": None,
        "worker": "host/worker-1",
        "stages": [
            {
                "name": "build",
                "status": "SUCCESS",
                "started_at": "2025-03-01T12:00:00+00:00",
                "finished_at": "2025-03-01T12:00:05+00:00",
                "jobs": [
                    {
                        "name": "compile",
                        "status": "SUCCESS",
                        "allow_failure": False,
                        "exit_code": 0,
                        "image": "gcc:14",
                        "started_at": "2025-03-01T12:00:00+00:00",
                        "finished_at": "2025-03-01T12:00:05+00:00",
                        "allowed": False,
                        "error": None,
                        "tests": None,
                        "junit": None,
                        "memory_peak_bytes": None,
                        "cpu_seconds": None,
                        "needs": None,
                        "reused_from": None,
                    }
                ],
            },
            {
                "name": "test",
                "status": "PENDING",
                "started_at": None,
                "finished_at": None,
                "jobs": [
                    {
                        "name": "unit",
                        "status": "PENDING",
                        "allow_failure": False,
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
                    },
                    {
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
                    },
                ],
            },
        ],
        "repo": "/src/repo",
        "file": ".pipelines/ci.yaml",
        "overrides": ["pipeline.image=alpine:3.20"],
        "retry_of": None,
    }


def test_create_run_json_keys_in_spec_order(store: Store) -> None:
    create(store)
    run = store.get_run("ci", 1).model_dump(mode="json")

    assert list(run) == [
        "pipeline", "run", "status", "commit", "branch", "started_at", "finished_at", "worker",
        "stages", "repo", "file", "overrides", "retry_of",
    ]  # fmt: skip
    assert list(run["stages"][0]) == ["name", "status", "started_at", "finished_at", "jobs"]
    assert list(run["stages"][0]["jobs"][0]) == [
        "name", "status", "allow_failure", "exit_code", "image", "started_at", "finished_at",
        "allowed", "error", "tests", "junit", "memory_peak_bytes", "cpu_seconds", "needs",
        "reused_from",
    ]  # fmt: skip


def test_create_run_numbers_per_pipeline(store: Store) -> None:
    numbers = [create(store, "a")[1], create(store, "b")[1], create(store, "a")[1]]

    assert numbers == [1, 1, 2]
    assert [r.run for r in store.list_runs("a").runs] == [2, 1]


def test_create_run_concurrent_threads_distinct_numbers(store: Store) -> None:
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda i: create(store, key=f"k{i}"), range(20)))

    assert sorted(number for _, number in results) == list(range(1, 21))
    assert len({run_id for run_id, _ in results}) == 20
    assert sorted(r.run for r in store.list_runs("ci").runs) == list(range(1, 21))


def _create_in_process(url: str, count: int) -> list[int]:
    with Store(url) as store:
        return [create(store)[1] for _ in range(count)]


@pytest.mark.slow
def test_create_run_concurrent_processes_distinct_numbers(store_url: str) -> None:
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.starmap(_create_in_process, [(store_url, 5)] * 4)

    assert sorted(n for numbers in results for n in numbers) == list(range(1, 21))


def test_create_run_failing_midway_records_nothing(store: Store) -> None:
    twice = [("build", [("compile", "gcc", False)]), ("test", [("compile", "gcc", False)])]

    with pytest.raises(StoreError) as caught:
        create(store, stages=twice)

    assert str(caught.value).startswith("cannot record a run in the history store at ")
    assert str(caught.value).endswith(
        ("UNIQUE constraint failed: job_runs.run_id, job_runs.name", '"uq_job_runs_run_id_name"')
    )

    assert store.list_pipelines().pipelines == []
    assert store.find_active_duplicate("key-1") is None
    assert store.open_runs() == []
    assert create(store)[1] == 1


def test_set_run_changes_only_given_fields(store: Store) -> None:
    run_id, _ = create(store)
    store.set_run(run_id, status=Status.RUNNING, started_at=T0, worker="w1", flow_run_id="f-1")

    store.set_run(run_id, status=Status.SUCCESS, finished_at=T0 + timedelta(minutes=1))

    run = store.get_run("ci", 1)
    assert (run.status, run.started_at, run.finished_at, run.worker) == (
        Status.SUCCESS,
        T0,
        T0 + timedelta(minutes=1),
        "w1",
    )
    assert store.open_runs() == []


def test_set_job_changes_only_given_fields(store: Store) -> None:
    run_id, _ = create(store)
    store.set_job(run_id, "unit", status=Status.RUNNING, started_at=T0, log_path="/logs/unit.log")

    store.set_job(run_id, "unit", status=Status.FAILED, exit_code=3, attempts=2, error="exit 3")

    job = store.get_job("ci", 1, "unit")
    assert (job.status, job.exit_code, job.started_at, job.finished_at) == (
        Status.FAILED,
        3,
        T0,
        None,
    )
    assert store.job_log_path("ci", 1, "unit") == "/logs/unit.log"
    assert store.job_log_path("ci", 1, "lint") is None


def test_set_stage_changes_only_given_fields(store: Store) -> None:
    run_id, _ = create(store)
    store.set_stage(run_id, "test", status=Status.RUNNING, started_at=T0)

    store.set_stage(run_id, "test", finished_at=T0 + timedelta(seconds=1))

    stage = store.get_stage("ci", 1, "test")
    assert (stage.status, stage.started_at, stage.finished_at) == (
        Status.RUNNING,
        T0,
        T0 + timedelta(seconds=1),
    )
    assert [j.name for j in stage.jobs] == ["unit", "lint"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s, r: s.set_run(r + 99, status=Status.RUNNING), "no run with id {missing}"),
        (lambda s, r: s.set_run(r + 99), "no run with id {missing}"),
        (
            lambda s, r: s.set_stage(r, "deploy", status=Status.RUNNING),
            "no stage 'deploy' in run 'ci#1'",
        ),
        (lambda s, r: s.set_stage(r, "deploy"), "no stage 'deploy' in run 'ci#1'"),
        (lambda s, r: s.set_job(r, "nope", status=Status.RUNNING), "no job 'nope' in run 'ci#1'"),
        (lambda s, r: s.set_job(r + 99, "unit", exit_code=1), "no run with id {missing}"),
        (
            lambda s, r: s.add_artifact(r, "nope", "a", 1, "0" * 64, "/x"),
            "no job 'nope' in run 'ci#1'",
        ),
        (lambda s, r: s.settle_run(r + 99, Status.FAILED), "no run with id {missing}"),
    ],
)
def test_writes_unknown_target_not_found(store: Store, call, message: str) -> None:
    run_id, _ = create(store)

    with pytest.raises(NotFound) as caught:
        call(store, run_id)

    assert str(caught.value) == message.format(missing=run_id + 99)


def test_find_active_duplicate_open_run_found(store: Store) -> None:
    first = create(store, key="same")
    store.set_run(first[0], status=Status.RUNNING)

    assert store.find_active_duplicate("same") == first
    assert store.find_active_duplicate("other") is None


def test_find_active_duplicate_finished_run_ignored(store: Store) -> None:
    run_id, _ = create(store, key="same")
    store.set_run(run_id, status=Status.SUCCESS)

    assert store.find_active_duplicate("same") is None


def test_open_runs_lists_pending_and_running(store: Store) -> None:
    first, _ = create(store, "a")
    second, _ = create(store, "b")
    third, _ = create(store, "a")
    store.set_run(first, status=Status.RUNNING, flow_run_id="flow-1")
    store.set_run(second, status=Status.SUCCESS)

    assert store.open_runs() == [(first, "a", 1, "flow-1"), (third, "a", 2, None)]


def test_timestamps_read_back_aware_utc(store: Store) -> None:
    run_id, _ = create(store)
    plus_two = datetime(2025, 3, 1, 14, 30, tzinfo=timezone(timedelta(hours=2)))

    store.set_run(run_id, started_at=plus_two, finished_at=datetime(2025, 3, 1, 13, 0))

    run = store.get_run("ci", 1)
    assert run.started_at == datetime(2025, 3, 1, 12, 30, tzinfo=UTC)
    assert run.started_at.tzinfo is UTC
    assert run.finished_at == datetime(2025, 3, 1, 13, 0, tzinfo=UTC)
    assert run.finished_at.tzinfo is UTC
    assert run.model_dump(mode="json")["started_at"] == "2025-03-01T12:30:00+00:00"
