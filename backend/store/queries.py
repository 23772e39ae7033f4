"""Read queries of the history store: rows in, public schemas out.

Each function takes an open connection, so a caller can combine several in one transaction.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, func, select

from backend.errors import NotFound, UsageError
from backend.schemas import (
    ArtifactPublic,
    JobRunPublic,
    JobTestsPublic,
    PipelinesPublic,
    PipelineSummary,
    RunPublic,
    RunsPublic,
    RunSummary,
    StageRunPublic,
    Status,
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
# a job's JUnit counts (0003): read into ``tests``, carried over to a REUSED job as they are
TEST_COLUMNS = (
    job_runs.c.tests_total,
    job_runs.c.tests_failed,
    job_runs.c.tests_errors,
    job_runs.c.tests_skipped,
    job_runs.c.tests_time,
    job_runs.c.tests_failed_names,
)
_JOB_COLUMNS = (
    job_runs.c.name,
    job_runs.c.status,
    job_runs.c.allow_failure,
    job_runs.c.exit_code,
    job_runs.c.image,
    job_runs.c.started_at,
    job_runs.c.finished_at,
    job_runs.c.allowed,
    job_runs.c.error,
    *TEST_COLUMNS,
    job_runs.c.memory_peak_bytes,
    job_runs.c.cpu_seconds,
    job_runs.c.needs,
    job_runs.c.reused_from,
)


def _job(row: Row[Any]) -> JobRunPublic:
    """A job row (``_JOB_COLUMNS``) as its public shape, the ``tests_*`` columns as ``tests``."""
    fields = dict(row._mapping)
    counts = {key: fields.pop(f"tests_{key}") for key in _TEST_FIELDS}
    names = fields.pop("tests_failed_names")
    needs = fields.pop("needs")
    tests = None
    if counts["total"] is not None:
        tests = JobTestsPublic(
            **{key: value or 0 for key, value in counts.items()},
            failed_names=json.loads(names) if names else [],
        )
    return JobRunPublic.model_validate(
        {**fields, "tests": tests, "needs": None if needs is None else json.loads(needs)}
    )


_TEST_FIELDS = ("total", "failed", "errors", "skipped", "time")


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


MAX_PAGE = 1000  # the most rows one page of a list holds
_CURSOR_MAX = 1200  # characters: a pipeline name (at most 1000) and its encoding


def encode_cursor(kind: str, value: int | str) -> str:
    """An opaque cursor: where the next page of a ``kind`` list starts (after ``value``)."""
    raw = f"{kind}:{value}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, kind: str) -> str:
    """The value ``encode_cursor(kind, value)`` made; UsageError for anything else."""
    bad = UsageError("cursor: not a cursor of this list: pass the 'next' of the previous page")
    if len(cursor) > _CURSOR_MAX:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad from None
    given, sep, value = raw.partition(":")
    if given != kind or not sep or not value:
        raise bad
    return value


def _run_cursor(cursor: str) -> int:
    value = decode_cursor(cursor, "runs")
    if not value.isascii() or not value.isdigit() or int(value) > 2**63:
        raise UsageError("cursor: not a cursor of this list: pass the 'next' of the previous page")
    return int(value)


def list_pipelines(
    connection: Connection, limit: int | None = None, cursor: str | None = None
) -> PipelinesPublic:
    """Pipelines with runs, by name, with their run count and latest run.

    ``limit`` pipelines at most, after the one ``cursor`` names (``next`` of the page before).
    """
    latest = (
        select(
            pipeline_runs.c.pipeline,
            func.count().label("runs"),
            func.max(pipeline_runs.c.number).label("last_run"),
        )
        .group_by(pipeline_runs.c.pipeline)
    )
    if cursor is not None:
        latest = latest.where(pipeline_runs.c.pipeline > decode_cursor(cursor, "pipelines"))
    if limit is not None:
        latest = latest.order_by(pipeline_runs.c.pipeline).limit(max(limit, 0) + 1)
    sub = latest.subquery()
    rows = connection.execute(
        select(
            sub.c.pipeline,
            sub.c.runs,
            sub.c.last_run,
            pipeline_runs.c.status.label("last_status"),
            pipeline_runs.c.started_at.label("last_started_at"),
        )
        .join(
            pipeline_runs,
            and_(
                pipeline_runs.c.pipeline == sub.c.pipeline,
                pipeline_runs.c.number == sub.c.last_run,
            ),
        )
        .order_by(sub.c.pipeline)
    )
    found = [PipelineSummary.model_validate(dict(r._mapping)) for r in rows]
    following = None
    if limit is not None and len(found) > limit:
        found = found[:limit]
        following = encode_cursor("pipelines", found[-1].pipeline) if found else None
    return PipelinesPublic(pipelines=found, next=following)


def list_runs(
    connection: Connection,
    pipeline: str | None,
    limit: int | None = None,
    *,
    cursor: str | None = None,
    status: Status | None = None,
    branch: str | None = None,
    since: datetime | None = None,
) -> RunsPublic:
    """Runs newest first (by id): of ``pipeline``, or of every pipeline when it is None.

    ``status``, ``branch`` and ``since`` (created at or after) narrow the list; at most
    ``limit`` runs, after the run ``cursor`` names (the ``next`` of the page before: a keyset,
    so a page costs the same however deep it is). NotFound when ``pipeline`` has no run at all.
    """
    query = select(pipeline_runs.c.id, *_SUMMARY_COLUMNS).order_by(pipeline_runs.c.id.desc())
    if pipeline is not None:
        query = query.where(pipeline_runs.c.pipeline == pipeline)
    if status is not None:
        query = query.where(pipeline_runs.c.status == Status(status).value)
    if branch is not None:
        query = query.where(pipeline_runs.c.branch == branch)
    if since is not None:
        query = query.where(pipeline_runs.c.created_at >= since)
    if cursor is not None:
        query = query.where(pipeline_runs.c.id < _run_cursor(cursor))
    if limit is not None:
        query = query.limit(max(limit, 0) + 1)
    rows = list(connection.execute(query))
    following = None
    if limit is not None and len(rows) > limit:
        rows = rows[:limit]
        following = encode_cursor("runs", rows[-1].id) if rows else None
    runs = [RunSummary.model_validate(dict(r._mapping)) for r in rows]
    if not runs and pipeline is not None:
        exists = connection.scalar(
            select(pipeline_runs.c.id).where(pipeline_runs.c.pipeline == pipeline).limit(1)
        )
        if exists is None:
            raise NotFound(f"no runs of pipeline '{pipeline}'")
    return RunsPublic(pipeline=pipeline, runs=runs, next=following)


def get_run(connection: Connection, pipeline: str, number: int) -> RunPublic:
    """Run ``pipeline#number`` with its stages in order and their jobs in plan order."""
    row = connection.execute(
        select(
            pipeline_runs.c.id,
            *_SUMMARY_COLUMNS,
            pipeline_runs.c.repo,
            pipeline_runs.c.file,
            pipeline_runs.c.overrides,
            pipeline_runs.c.retry_of,
        ).where(pipeline_runs.c.pipeline == pipeline, pipeline_runs.c.number == number)
    ).first()
    if row is None:
        raise NotFound(f"no run '{run_name(pipeline, number)}'")
    stages = _stages(connection, row.id)
    fields = dict(row._mapping)
    fields["overrides"] = json.loads(fields["overrides"] or "[]")
    return RunPublic.model_validate({**fields, "stages": stages})


def run_env(connection: Connection, pipeline: str, number: int) -> dict[str, str]:
    """The ``--env`` values run ``pipeline#number`` was given ({} when it was recorded before
    cicd kept them)."""
    found = connection.execute(
        select(pipeline_runs.c.env).where(
            pipeline_runs.c.pipeline == pipeline, pipeline_runs.c.number == number
        )
    ).first()
    if found is None:
        raise NotFound(f"no run '{run_name(pipeline, number)}'")
    return dict(json.loads(found.env)) if found.env else {}


def get_stage(connection: Connection, pipeline: str, number: int, stage: str) -> StageRunPublic:
    """One stage of run ``pipeline#number`` with its jobs; NotFound names what is missing."""
    found = _stages(connection, run_id(connection, pipeline, number), stage)
    if not found:
        raise NotFound(f"no stage '{stage}' in run '{run_name(pipeline, number)}'")
    return found[0]


def get_job(connection: Connection, pipeline: str, number: int, job: str) -> JobRunPublic:
    """One job of run ``pipeline#number``; NotFound names what is missing."""
    row = job_row(connection, run_id(connection, pipeline, number), job, *_JOB_COLUMNS)
    return _job(row)


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
        jobs[row.stage_run_id].append(_job(row))
    return [
        StageRunPublic.model_validate({**row._mapping, "jobs": jobs[row.id]})
        for row in connection.execute(stage_query)
    ]
