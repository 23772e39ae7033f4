"""Migration 0006 and what it keeps: a job's needs and resources, its test cases, flaky tests."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

from backend.errors import NotFound, UsageError
from backend.schemas import JobTestsPublic, Status
from backend.store import Store
from backend.store.flaky import MAX_NAME, MAX_TEST_CASES
from backend.store.migrate import alembic_config
from backend.store.records import JobSpec


def one_job_run(store: Store, commit: str = "c1", pipeline: str = "ci") -> int:
    run_id, _ = store.create_run(
        pipeline,
        [("test", [("unit", "python:3.12", False)])],
        repo="r", branch="main", commit=commit, file="f", request_key=f"k-{commit}",
    )  # fmt: skip
    return run_id


def test_migration_0006_upgrades_old_rows_and_downgrades(store_url: str) -> None:
    Store(store_url).close()  # the newest schema (and a SQLite file's folder)
    engine = create_engine(store_url)
    config = alembic_config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0005")
            connection.execute(
                text(
                    "INSERT INTO pipeline_runs (id, pipeline, number, status, repo, \"commit\", "
                    "file, request_key, overrides, created_at) VALUES (1, 'old', 1, 'SUCCESS', "
                    "'r', 'c', 'f', 'k', '[]', '2026-01-01 00:00:00')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO stage_runs (id, run_id, name, position, status) "
                    "VALUES (1, 1, 'build', 0, 'SUCCESS')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO job_runs (id, stage_run_id, run_id, name, position, status, "
                    "allow_failure, image, attempts, allowed) "
                    "VALUES (1, 1, 1, 'make', 0, 'SUCCESS', false, 'gcc', 1, false)"
                )
            )
            command.upgrade(config, "0006")
        with Store(store_url) as store:
            job = store.get_job("old", 1, "make")
        assert (job.needs, job.memory_peak_bytes, job.cpu_seconds, job.junit) == (
            None, None, None, None
        )
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0005")
            columns = {c["name"] for c in inspect(connection).get_columns("job_runs")}
            tables = set(inspect(connection).get_table_names())
        assert not {"needs", "memory_peak_bytes", "cpu_seconds"} & columns
        assert "test_cases" not in tables
    finally:
        engine.dispose()


def test_create_run_records_needs_none_empty_and_names(store: Store) -> None:
    store.create_run(
        "ci",
        [
            ("build", [JobSpec("compile", "gcc", False, needs=[])]),
            (
                "test",
                [
                    JobSpec("unit", "py", False, needs=["compile"]),
                    ("lint", "py", True),
                    JobSpec("deploy", "py", False, Status.MANUAL, ["unit", "lint"]),
                ],
            ),
        ],
        repo="r", branch=None, commit="c", file="f", request_key="k",
    )  # fmt: skip

    run = store.get_run("ci", 1)
    needs = {job.name: job.needs for stage in run.stages for job in stage.jobs}
    assert needs == {"compile": [], "unit": ["compile"], "lint": None, "deploy": ["unit", "lint"]}
    assert store.get_job("ci", 1, "deploy").status is Status.MANUAL


def test_set_job_resources_shown_in_job_json(store: Store) -> None:
    run_id = one_job_run(store)

    store.set_job(run_id, "unit", memory_peak_bytes=5 * 2**40, cpu_seconds=12.25)

    job = store.get_job("ci", 1, "unit").model_dump(mode="json")
    assert (job["memory_peak_bytes"], job["cpu_seconds"]) == (5 * 2**40, 12.25)


def test_set_job_tests_gives_junit_object(store: Store) -> None:
    run_id = one_job_run(store)
    tests = JobTestsPublic(
        total=10, failed=2, errors=1, skipped=3, time=1.5, failed_names=["a.x", "a.y", "b.z"]
    )

    store.set_job_tests(run_id, "unit", tests)

    job = store.get_job("ci", 1, "unit").model_dump(mode="json")
    assert job["junit"] == {
        "tests": 10, "passed": 4, "failed": 2, "errors": 1, "skipped": 3,
        "failed_names": ["a.x", "a.y", "b.z"],
    }  # fmt: skip
    assert job["tests"]["total"] == 10  # kept for scripts that read it


def test_add_test_cases_bounded_and_replaced(store: Store) -> None:
    run_id = one_job_run(store)
    many = [(f"t.test_{i}", "passed") for i in range(MAX_TEST_CASES + 10)]

    assert store.add_test_cases(run_id, "unit", many) == MAX_TEST_CASES
    long_name = "x" * (MAX_NAME + 100)
    assert store.add_test_cases(run_id, "unit", [(long_name, "failed"), ("y", "bogus")]) == 1
    engine = create_engine(store.url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT name, outcome FROM test_cases")).all()
    finally:
        engine.dispose()
    assert [(len(name), outcome) for name, outcome in rows] == [(MAX_NAME, "failed")]


def test_add_test_cases_unknown_job_not_found(store: Store) -> None:
    run_id = one_job_run(store)

    with pytest.raises(NotFound, match="no job 'ghost' in run 'ci#1'"):
        store.add_test_cases(run_id, "ghost", [("a", "passed")])


def record(store: Store, commit: str, outcomes: dict[str, str]) -> None:
    run_id = one_job_run(store, commit)
    store.add_test_cases(run_id, "unit", list(outcomes.items()))


def test_flaky_tests_same_commit_and_flips(store: Store) -> None:
    record(store, "c1", {"t.stable": "passed", "t.flaky": "passed", "t.broke": "passed"})
    record(store, "c1", {"t.stable": "passed", "t.flaky": "failed", "t.broke": "passed"})
    record(store, "c2", {"t.stable": "passed", "t.flaky": "passed", "t.broke": "error",
                         "t.skip": "skipped"})  # fmt: skip

    found = store.flaky_tests("ci", last=50).model_dump(mode="json")

    assert found == {
        "pipeline": "ci",
        "last": 50,
        "runs": 3,
        "tests": [
            {"job": "unit", "name": "t.flaky", "passed": 2, "failed": 1, "flips": 2,
             "same_commit": ["c1"], "last_run": 3, "last_outcome": "passed"},
            {"job": "unit", "name": "t.broke", "passed": 2, "failed": 1, "flips": 1,
             "same_commit": [], "last_run": 3, "last_outcome": "error"},
        ],
    }  # fmt: skip


def test_flaky_tests_last_looks_at_newest_runs_only(store: Store) -> None:
    record(store, "c1", {"t.flaky": "failed"})
    record(store, "c1", {"t.flaky": "passed"})
    record(store, "c1", {"t.flaky": "passed"})

    assert [t.name for t in store.flaky_tests("ci", last=3).tests] == ["t.flaky"]
    assert store.flaky_tests("ci", last=2).model_dump() == {
        "pipeline": "ci", "last": 2, "runs": 2, "tests": [],
    }  # fmt: skip


def test_flaky_tests_other_pipeline_not_counted(store: Store) -> None:
    record(store, "c1", {"t.a": "passed"})
    other = one_job_run(store, "c1", pipeline="other")
    store.add_test_cases(other, "unit", [("t.a", "failed")])

    assert store.flaky_tests("ci").tests == []


def test_flaky_tests_unknown_pipeline_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="no runs of pipeline 'nope'"):
        store.flaky_tests("nope")


@pytest.mark.parametrize("last", [0, -1, 1001])
def test_flaky_tests_last_out_of_range_usage_error(store: Store, last: int) -> None:
    record(store, "c1", {"t.a": "passed"})

    with pytest.raises(UsageError, match=f"last: must be from 1 to 1000, not {last}"):
        store.flaky_tests("ci", last=last)
