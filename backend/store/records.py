"""Writing a new run: its row, its stages and its jobs, numbered per pipeline."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, func, insert, select, text
from sqlalchemy.exc import IntegrityError

from backend.schemas import Status
from backend.store.tables import job_runs, pipeline_runs, stage_runs

_NUMBER_CONSTRAINT = "uq_pipeline_runs_pipeline_number"


class JobSpec(NamedTuple):
    """A job as a new run records it: PENDING unless it starts settled (e.g. MANUAL).

    ``needs`` are the jobs it waits for: None when it has no ``needs`` keyword (stage order
    applies), ``[]`` when it declares it needs nothing.
    """

    name: str
    image: str
    allow_failure: bool
    status: Status = Status.PENDING
    needs: list[str] | None = None


# A job as ``create_run`` takes it: a JobSpec, or the short tuples ``(name, image,
# allow_failure)`` and ``(name, image, allow_failure, status)``.
JobRow = tuple[str, str, bool] | tuple[str, str, bool, Status] | JobSpec


class ReusedArtifact(NamedTuple):
    """An artifact of a job that a retry carries over (``Store.reuse_job``)."""

    path: str
    size: int
    sha256: str
    stored_path: str
    name: str | None
    expires_at: datetime | None
    kind: str


class NumberTaken(Exception):
    """Another writer took the run number this transaction chose."""


def insert_run(
    connection: Connection,
    row: dict[str, Any],
    stages: list[tuple[str, list[JobRow]]],
) -> tuple[int, int]:
    """Insert a PENDING run numbered max+1 of its pipeline, with its stages and jobs.

    A job is a ``JobSpec`` or the short tuple ``(name, image, allow_failure)``, PENDING, or
    ``(..., status)`` to start it settled (MANUAL: a ``when: manual`` job the run does not start).

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
        specs = [JobSpec(*job) for job in jobs]
        # a stage whose jobs all start settled (MANUAL: not run) is SKIPPED, as on GitLab
        runs = any(Status(spec.status) is Status.PENDING for spec in specs)
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
        for spec in specs:
            job_rows.append(
                {
                    "stage_run_id": stage_id,
                    "run_id": run_id,
                    "name": spec.name,
                    "position": position,
                    "status": Status(spec.status).value,
                    "allow_failure": spec.allow_failure,
                    "image": spec.image,
                    "attempts": 0,
                    "needs": None if spec.needs is None else json.dumps(list(spec.needs)),
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
