"""Migration 0007 and what a retry keeps: a run's --env and retry_of, a reused job."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import create_engine, inspect, text

from backend.schemas import JobTestsPublic, Status
from backend.store import Store
from backend.store.migrate import alembic_config


def test_migration_0007_upgrades_old_rows_and_downgrades(store_url: str) -> None:
    Store(store_url).close()
    engine = create_engine(store_url)
    config = alembic_config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0006")
            connection.execute(
                text(
                    "INSERT INTO pipeline_runs (id, pipeline, number, status, repo, \"commit\", "
                    "file, request_key, overrides, created_at) VALUES (1, 'old', 1, 'SUCCESS', "
                    "'r', 'c', 'f', 'k', '[\"a=b\"]', '2026-01-01 00:00:00')"
                )
            )
            command.upgrade(config, "0007")
        with Store(store_url) as store:
            run = store.get_run("old", 1)
            assert (run.repo, run.file, run.overrides, run.retry_of) == ("r", "f", ["a=b"], None)
            assert store.run_env("old", 1) == {}
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0006")
            runs = {c["name"] for c in inspect(connection).get_columns("pipeline_runs")}
            jobs = {c["name"] for c in inspect(connection).get_columns("job_runs")}
        assert not {"env", "retry_of"} & runs and "reused_from" not in jobs
    finally:
        engine.dispose()


def test_reuse_job_carries_status_log_tests_and_artifacts_over(store_url: str) -> None:
    stages = [("build", [("a", "busybox", False), ("b", "busybox", False)])]
    with Store(store_url) as store:
        first, _ = store.create_run(
            "p", stages, repo="r", branch="main", commit="c", file="f", request_key="k1",
            env={"COLOUR": "red"},
        )  # fmt: skip
        store.set_job(first, "a", status=Status.SUCCESS, exit_code=0, log_path="/logs/p/1/a.log")
        store.set_job_tests(first, "a", JobTestsPublic(total=3, failed=0, errors=0, skipped=1,
                                                        time=0.5))  # fmt: skip
        expiry = datetime(2030, 1, 1, tzinfo=UTC)
        store.add_artifact(first, "a", "out/x.txt", 7, "f" * 64, "/art/1/a/out/x.txt",
                           name="bundle", expires_at=expiry)  # fmt: skip
        second, number = store.create_run(
            "p", stages, repo="r", branch="main", commit="c", file="f", request_key="k2",
            env={"COLOUR": "red", "FIXED": "1"}, retry_of=1,
        )  # fmt: skip

        kept = store.reuse_job(second, "a", first)

        job = store.get_job("p", number, "a")
        assert (job.status, job.exit_code, job.reused_from, job.started_at) == (
            Status.REUSED, 0, 1, None
        )
        assert job.tests is not None and (job.tests.total, job.tests.skipped) == (3, 1)
        assert store.job_log_path("p", number, "a") == "/logs/p/1/a.log"
        assert [(k.path, k.stored_path, k.name, k.expires_at, k.kind) for k in kept] == [
            ("out/x.txt", "/art/1/a/out/x.txt", "bundle", expiry, "file")
        ]
        assert store.get_run("p", number).retry_of == 1
        assert store.run_env("p", number) == {"COLOUR": "red", "FIXED": "1"}
        # a retry of the retry points at the run that really ran it
        third, last = store.create_run(
            "p", stages, repo="r", branch="main", commit="c", file="f", request_key="k3",
            retry_of=number,
        )  # fmt: skip
        store.reuse_job(third, "a", second)
        assert store.get_job("p", last, "a").reused_from == 1
