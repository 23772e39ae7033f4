"""Writing a new run: its row, its stages and its jobs, numbered per pipeline."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, insert, select, text
from sqlalchemy.exc import IntegrityError

from backend.schemas import Status
from backend.store.tables import job_runs, pipeline_runs, stage_runs

_NUMBER_CONSTRAINT = "uq_pipeline_runs_pipeline_number"


JobRow = tuple[str, str, bool] | tuple[str, str, bool, Status]


class NumberTaken(Exception):
    """Another writer took the run number this transaction chose."""


def insert_run(
    connection: Connection,
    row: dict[str, Any],
    stages: list[tuple[str, list[JobRow]]],
) -> tuple[int, int]:
    """Insert a PENDING run numbered max+1 of its pipeline, with its stages and jobs.

    A job is ``(name, image, allow_failure)``, PENDING, or ``(..., status)`` to start it settled
    (MANUAL: a ``when: manual`` job the run does not start).

    Raises NumberTaken when a concurrent writer took that number first (retry in a new
    transaction); any other failure propagates and the caller's transaction rolls back.
    """
    pipeline = row["pipeline"]
    if connection.dialect.name == "postgresql":
        # Writers of one pipeline queue here instead of racing for the same number.
        connection.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
            {"key": f"cicd.run_number:{pipeline}"},
        )
    number = connection.scalar(
        select(func.coalesce(func.max(pipeline_runs.c.number), 0) + 1).where(
            pipeline_runs.c.pipeline == pipeline
        )
    )
    try:
        result = connection.execute(insert(pipeline_runs).values(**row, number=number))
    except IntegrityError as exc:
        if _is_number_clash(exc):
            raise NumberTaken from exc
        raise
    inserted = result.inserted_primary_key
    assert inserted is not None and number is not None  # an INSERT of one row; max() + 1
    run_id = int(inserted[0])
    position = 0
    for stage_position, (stage, jobs) in enumerate(stages):
        # a stage whose jobs all start settled (MANUAL: not run) is SKIPPED, as on GitLab
        runs = any(len(job) < 4 or Status(job[3]) is Status.PENDING for job in jobs)
        stage_key = connection.execute(
            insert(stage_runs).values(
                run_id=run_id,
                name=stage,
                position=stage_position,
                status=(Status.PENDING if runs else Status.SKIPPED).value,
            )
        ).inserted_primary_key
        assert stage_key is not None  # an INSERT of one row
        stage_id = stage_key[0]
        job_rows = []
        for job, image, allow_failure, *status in jobs:
            job_rows.append(
                {
                    "stage_run_id": stage_id,
                    "run_id": run_id,
                    "name": job,
                    "position": position,
                    "status": Status(status[0] if status else Status.PENDING).value,
                    "allow_failure": allow_failure,
                    "image": image,
                    "attempts": 0,
                }
            )
            position += 1
        if job_rows:
            connection.execute(insert(job_runs), job_rows)
    return run_id, int(number)


def _is_number_clash(exc: IntegrityError) -> bool:
    diag = getattr(exc.orig, "diag", None)  # psycopg names the violated constraint
    if diag is not None:
        return getattr(diag, "constraint_name", None) == _NUMBER_CONSTRAINT
    return "pipeline_runs.pipeline, pipeline_runs.number" in str(exc.orig)
