"""Live output of a run: a job's log as text, and the run's events as NDJSON."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from backend.api.deps import get_service
from backend.api.schemas import ERRORS
from backend.api.streams import event_lines, log_lines
from backend.service import Service

router = APIRouter(prefix="/runs", tags=["logs"], responses=ERRORS)


@router.get(
    "/{pipeline}/{number}/jobs/{job}/log",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/plain": {}}, "description": "Timestamped log lines"}},
)
def get_job_log(
    pipeline: str,
    number: int,
    job: str,
    follow: Annotated[bool, Query(description="stream new lines until the job ends")] = False,
    service: Service = Depends(get_service),
) -> StreamingResponse:
    """A job's log: one timestamped line per output line (`cicd logs NAME#N --job J [--follow]`)."""
    lines = log_lines(service, pipeline, number, job, follow)
    return StreamingResponse(lines, media_type="text/plain; charset=utf-8")


@router.get(
    "/{pipeline}/{number}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "One event per line"}},
)
def get_run_events(
    request: Request,
    pipeline: str,
    number: int,
    after: Annotated[int, Query(ge=0, description="skip the first K events (resume)")] = 0,
    service: Service = Depends(get_service),
) -> StreamingResponse:
    """A run's live events as NDJSON, one per line, until its `run_finished`.

    Each event is `{kind, run, stage, job, text, status, exit_code, at}`. Kinds: run_started,
    stage_started, job_started, line, job_finished, stage_finished, warning, run_finished.
    A run not executing on this server (finished before it started, or run by a worker)
    gives one `run_finished` from its record once it is over.
    """
    lines = event_lines(service, request.app.state.hub, pipeline, number, after)
    return StreamingResponse(lines, media_type="application/x-ndjson")
