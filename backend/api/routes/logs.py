"""Live output of a run: a job's log as text, and the run's events as NDJSON."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from backend.api.deps import get_service
from backend.api.schemas import ERRORS, ErrorPublic, JobName, JobQuery, PipelineName, RunNumber
from backend.api.streams import Followers, event_lines, log_lines
from backend.service import Service

router = APIRouter(prefix="/runs", tags=["logs"], responses=ERRORS)

LOG_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {"text/plain": {}}, "description": "Timestamped log lines"},
    429: {"model": ErrorPublic, "description": "Too many streams open (CICD_MAX_FOLLOWERS)"},
}
Follow = Annotated[bool, Query(description="stream new lines until the job ends")]


def _log(
    request: Request, service: Service, pipeline: str, number: int, job: str, follow: bool
) -> StreamingResponse:
    hub = request.app.state.hub
    lines = log_lines(service, hub, pipeline, number, job, follow, request.is_disconnected)
    media_type = "text/plain; charset=utf-8"
    if not follow:
        return StreamingResponse(lines, media_type=media_type)
    followers: Followers = request.app.state.followers
    return followers.response(lines, media_type, followers.take())


@router.get("/{pipeline}/{number}/job/log", response_class=StreamingResponse,
            responses=LOG_RESPONSES)
def get_job_log_by_name(
    request: Request,
    pipeline: PipelineName,
    number: RunNumber,
    job: JobQuery,
    follow: Follow = False,
    service: Service = Depends(get_service),
) -> StreamingResponse:
    """A job's log, the job named by `?job=` (any name: `deploy/staging`, `a b`, ...)."""
    return _log(request, service, pipeline, number, job, follow)


@router.get("/{pipeline}/{number}/jobs/{job:path}/log", response_class=StreamingResponse,
            responses=LOG_RESPONSES)
def get_job_log(
    request: Request,
    pipeline: PipelineName,
    number: RunNumber,
    job: JobName,
    follow: Follow = False,
    service: Service = Depends(get_service),
) -> StreamingResponse:
    """A job's log: one timestamped line per output line (`cicd logs NAME#N --job J [--follow]`).

    With `follow`, new lines are streamed until the job ends. A job whose name ends in `/log`
    is reached with `/job/log?job=NAME`.
    """
    return _log(request, service, pipeline, number, job, follow)


@router.get(
    "/{pipeline}/{number}/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/x-ndjson": {}}, "description": "One event per line"},
        429: LOG_RESPONSES[429],
    },
)
def get_run_events(
    request: Request,
    pipeline: PipelineName,
    number: RunNumber,
    after: Annotated[
        int, Query(ge=0, le=2**62, description="skip the first K events (resume)")
    ] = 0,
    service: Service = Depends(get_service),
) -> StreamingResponse:
    """A run's live events as NDJSON, one per line, until its `run_finished`.

    Each event is `{kind, run, stage, job, text, status, exit_code, at}`. Kinds: run_started,
    stage_started, job_started, line, job_finished, stage_finished, warning, run_finished.
    A run waiting for a free slot (CICD_MAX_RUNS) first gets a `warning` that says it is queued.
    A run not executing on this server (finished before it started, or run by a worker)
    gives one `run_finished` from its record once it is over.
    """
    hub = request.app.state.hub
    lines = event_lines(service, hub, pipeline, number, after, request.is_disconnected)
    followers: Followers = request.app.state.followers
    return followers.response(lines, "application/x-ndjson", followers.take())
