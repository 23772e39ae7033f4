"""Read queries of the history store: rows in, public schemas out.

Each function takes an open connection, so a caller can combine several in one transaction.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, Row, and_, func, select

from backend.errors import NotFound
from backend.schemas import (
    ArtifactPublic,
    JobRunPublic,
    PipelinesPublic,
    PipelineSummary,
    RunPublic,
    RunsPublic,
    RunSummary,
    StageRunPublic,
)
from backend.store.tables import artifacts, job_runs, pipeline_runs, stage_runs

_SUMMARY_COLUMNS = (
    pipeline_runs.c.pipeline,
    pipeline_runs.c.number.label("run"),
    pipeline_runs.c.status,
    pipeline_runs.c.commit,
    pipeline_runs.c.branch,
    pipeline_runs.c.started_at,
    pipeline_runs.c.finished_at,
    pipeline_runs.c.worker,
)
_JOB_COLUMNS = (
    job_runs.c.name,
    job_runs.c.status,
    job_runs.c.allow_failure,
    job_runs.c.exit_code,
    job_runs.c.image,
    job_runs.c.started_at,
    job_runs.c.finished_at,
)


def run_name(pipeline: str, number: int) -> str:
    """The name of a run as users write it: ``NAME#N``."""
    return f"{pipeline}#{number}"


def run_id(connection: Connection, pipeline: str, number: int) -> int:
    """The id of run ``pipeline#number``; NotFound if there is none."""
    found = connection.scalar(
        select(pipeline_runs.c.id).where(
            pipeline_runs.c.pipeline == pipeline, pipeline_runs.c.number == number
        )
    )
    if found is None:
        raise NotFound(f"no run '{run_name(pipeline, number)}'")
    return int(found)


def run_ref(connection: Connection, run_id: int) -> tuple[str, int]:
    """``(pipeline, number)`` of the run with id ``run_id``; NotFound if there is none."""
    row = connection.execute(
        select(pipeline_runs.c.pipeline, pipeline_runs.c.number).where(pipeline_runs.c.id == run_id)
    ).first()
    if row is None:
        raise NotFound(f"no run with id {run_id}")
    return row.pipeline, row.number


def job_row(connection: Connection, run_id: int, job: str, *columns: Any) -> Row[Any]:
    """The given columns of job ``job`` of run ``run_id``; NotFound names the job and run."""
    row = connection.execute(
        select(*columns).where(job_runs.c.run_id == run_id, job_runs.c.name == job)
    ).first()
    if row is None:
        raise NotFound(f"no job '{job}' in run '{run_name(*run_ref(connection, run_id))}'")
    return row


def list_pipelines(connection: Connection) -> PipelinesPublic:
    """Every pipeline with runs, by name, with its run count and its latest run."""
    latest = (
        select(
            pipeline_runs.c.pipeline,
            func.count().label("runs"),
            func.max(pipeline_runs.c.number).label("last_run"),
        )
        .group_by(pipeline_runs.c.pipeline)
        .subquery()
    )
    rows = connection.execute(
        select(
            latest.c.pipeline,
            latest.c.runs,
            latest.c.last_run,
            pipeline_runs.c.status.label("last_status"),
            pipeline_runs.c.started_at.label("last_started_at"),
        )
        .join(
            pipeline_runs,
            and_(
                pipeline_runs.c.pipeline == latest.c.pipeline,
                pipeline_runs.c.number == latest.c.last_run,
            ),
        )
        .order_by(latest.c.pipeline)
    )
    return PipelinesPublic(
        pipelines=[PipelineSummary.model_validate(dict(r._mapping)) for r in rows]
    )


def list_runs(connection: Connection, pipeline: str, limit: int | None = None) -> RunsPublic:
    """Runs of ``pipeline``, newest first; NotFound if it has none."""
    query = (
        select(*_SUMMARY_COLUMNS)
        .where(pipeline_runs.c.pipeline == pipeline)
        .order_by(pipeline_runs.c.number.desc())
    )
    if limit is not None:
        query = query.limit(max(limit, 0))
    runs = [RunSummary.model_validate(dict(r._mapping)) for r in connection.execute(query)]
    if not runs:
        exists = connection.scalar(select(func.count()).where(pipeline_runs.c.pipeline == pipeline))
        if not exists:
            raise NotFound(f"no runs of pipeline '{pipeline}'")
    return RunsPublic(pipeline=pipeline, runs=runs)


def get_run(connection: Connection, pipeline: str, number: int) -> RunPublic:
    """Run ``pipeline#number`` with its stages in order and their jobs in plan order."""
    row = connection.execute(
        select(pipeline_runs.c.id, *_SUMMARY_COLUMNS).where(
            pipeline_runs.c.pipeline == pipeline, pipeline_runs.c.number == number
        )
    ).first()
    if row is None:
        raise NotFound(f"no run '{run_name(pipeline, number)}'")
    stages = _stages(connection, row.id)
    return RunPublic.model_validate({**row._mapping, "stages": stages})


def get_stage(connection: Connection, pipeline: str, number: int, stage: str) -> StageRunPublic:
    """One stage of run ``pipeline#number`` with its jobs; NotFound names what is missing."""
    found = _stages(connection, run_id(connection, pipeline, number), stage)
    if not found:
        raise NotFound(f"no stage '{stage}' in run '{run_name(pipeline, number)}'")
    return found[0]


def get_job(connection: Connection, pipeline: str, number: int, job: str) -> JobRunPublic:
    """One job of run ``pipeline#number``; NotFound names what is missing."""
    row = job_row(connection, run_id(connection, pipeline, number), job, *_JOB_COLUMNS)
    return JobRunPublic.model_validate(dict(row._mapping))


def list_artifacts(
    connection: Connection, pipeline: str, number: int, job: str | None = None
) -> list[ArtifactPublic]:
    """Artifacts of run ``pipeline#number`` (or of one of its jobs), by job order then path."""
    the_run = run_id(connection, pipeline, number)
    query = (
        select(job_runs.c.name.label("job"), artifacts.c.path, artifacts.c.size, artifacts.c.sha256)
        .join(job_runs, artifacts.c.job_run_id == job_runs.c.id)
        .where(job_runs.c.run_id == the_run)
        .order_by(job_runs.c.position, artifacts.c.path)
    )
    if job is not None:
        job_row(connection, the_run, job, job_runs.c.id)
        query = query.where(job_runs.c.name == job)
    return [ArtifactPublic.model_validate(dict(r._mapping)) for r in connection.execute(query)]


def artifact_file(connection: Connection, pipeline: str, number: int, job: str, path: str) -> str:
    """Where artifact ``path`` of ``job`` in run ``pipeline#number`` is stored."""
    the_job = job_row(connection, run_id(connection, pipeline, number), job, job_runs.c.id).id
    stored = connection.scalar(
        select(artifacts.c.stored_path).where(
            artifacts.c.job_run_id == the_job, artifacts.c.path == path
        )
    )
    if stored is None:
        raise NotFound(f"no artifact '{path}' of job '{job}' in run '{run_name(pipeline, number)}'")
    return str(stored)


def _stages(connection: Connection, the_run: int, name: str | None = None) -> list[StageRunPublic]:
    stage_query = (
        select(
            stage_runs.c.id,
            stage_runs.c.name,
            stage_runs.c.status,
            stage_runs.c.started_at,
            stage_runs.c.finished_at,
        )
        .where(stage_runs.c.run_id == the_run)
        .order_by(stage_runs.c.position)
    )
    job_query = (
        select(job_runs.c.stage_run_id, *_JOB_COLUMNS)
        .where(job_runs.c.run_id == the_run)
        .order_by(job_runs.c.position)
    )
    if name is not None:
        stage_query = stage_query.where(stage_runs.c.name == name)
        job_query = job_query.join(stage_runs, job_runs.c.stage_run_id == stage_runs.c.id).where(
            stage_runs.c.name == name
        )
    jobs: dict[int, list[JobRunPublic]] = defaultdict(list)
    for row in connection.execute(job_query):
        jobs[row.stage_run_id].append(JobRunPublic.model_validate(dict(row._mapping)))
    return [
        StageRunPublic.model_validate({**row._mapping, "jobs": jobs[row.id]})
        for row in connection.execute(stage_query)
    ]
