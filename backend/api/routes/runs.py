"""``/runs``: submit a run, read one run, one of its stages or jobs, cancel it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from backend.api.deps import get_launcher, get_service, get_settings
from backend.api.launcher import RunLauncher
from backend.api.schemas import (
    ERRORS,
    NAME_MAX,
    NAME_PATTERN,
    CancelPublic,
    ErrorPublic,
    JobName,
    JobQuery,
    PageCursor,
    PageLimit,
    PipelineName,
    RunNumber,
    StageName,
    SubmissionPublic,
    parse_run_request,
)
from backend.api.uploads import MAX_REQUEST_FIELD, read_submission
from backend.schemas import JobRunPublic, RunPublic, RunsPublic, StageRunPublic, Status
from backend.service import Service
from backend.settings import Settings
from backend.store.queries import MAX_PAGE

router = APIRouter(prefix="/runs", tags=["runs"], responses=ERRORS)

REQUEST_HELP = (
    "The run request as JSON (RunRequest: pipeline, plan, file, file_content, repo, branch, "
    f"commit, overrides, env, secrets, jobs, pull, force); at most {MAX_REQUEST_FIELD} bytes."
)
BUNDLE_HELP = (
    "A git bundle holding the commit (`git bundle create`), at most CICD_MAX_UPLOAD_BYTES; "
    "without it the server looks for the commit in `repo`, which must then be a path or URL "
    "the server can reach."
)
# The body is read by hand (streamed to disk, limits enforced while reading), so its shape is
# documented here rather than derived from parameters.
SUBMIT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["request"],
                    "properties": {
                        "request": {"type": "string", "description": REQUEST_HELP},
                        "bundle": {
                            "type": "string", "format": "binary", "description": BUNDLE_HELP
                        },
                    },
                }
            }
        },
    }
}


def _submit(launcher: RunLauncher, text: str | None, bundle: Path | None) -> SubmissionPublic:
    if text is None:
        raise RequestValidationError(
            [{"loc": ("body", "request"), "msg": "Field required", "type": "missing"}]
        )
    run_request = parse_run_request(text)
    if bundle is not None and bundle.stat().st_size == 0:
        bundle = None  # an empty file part: no bundle
    return SubmissionPublic.of(launcher.submit(run_request, bundle))


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SubmissionPublic,
    responses={
        413: {"model": ErrorPublic, "description": "A bundle or request over the limits"},
        422: {"model": ErrorPublic, "description": "Unknown commit or invalid file"},
        429: {"model": ErrorPublic, "description": "The run queue is full (CICD_MAX_QUEUE)"},
    },
    openapi_extra=SUBMIT_BODY,
)
async def submit_run(
    request: Request,
    launcher: RunLauncher = Depends(get_launcher),
    settings: Settings = Depends(get_settings),
) -> SubmissionPublic:
    """Submit a run: multipart form with the field `request` and, optionally, the file `bundle`.

    The pipeline file is read from the commit and validated again. A request identical to a
    run still PENDING or RUNNING (same repo, commit, pipeline and file) returns that run with
    `duplicate: true`, unless `force` is set. The run executes in the background (follow it
    with `/events`); beyond CICD_MAX_RUNS runs at once it waits, PENDING, in a queue.
    """
    form = await read_submission(request, settings.home / "uploads", settings.max_upload_bytes)
    try:
        # git and the store are blocking: off the event loop, like any sync route
        return await anyio.to_thread.run_sync(_submit, launcher, form.request, form.bundle)
    finally:
        form.discard()


@router.get("", response_model=RunsPublic)
def list_runs(
    limit: PageLimit = None,
    cursor: PageCursor = None,
    pipeline: Annotated[
        str | None,
        Query(description="only this pipeline's runs", max_length=NAME_MAX, pattern=NAME_PATTERN),
    ] = None,
    status: Annotated[Status | None, Query(description="only runs in this status")] = None,
    branch: Annotated[
        str | None,
        Query(description="only runs of this branch", max_length=255, pattern=NAME_PATTERN),
    ] = None,
    since: Annotated[
        datetime | None,
        Query(description="only runs submitted at or after this time (ISO 8601; UTC if naive)"),
    ] = None,
    service: Service = Depends(get_service),
) -> RunsPublic:
    """Runs of every pipeline (or of `pipeline`), newest first, a page at a time.

    `status`, `branch` and `since` narrow the list. A page holds `limit` runs (at most and by
    default 1000); `next` is the cursor of the following one (`?cursor=`), null on the last.
    Pages are keyed on the run's id, so a run submitted meanwhile never shifts a page. A
    `pipeline` with no run at all is a 404.
    """
    return service.runs(
        pipeline, limit or MAX_PAGE, cursor=cursor, status=status, branch=branch, since=since
    )


@router.get("/{pipeline}/{number}", response_model=RunPublic)
def get_run(
    pipeline: PipelineName, number: RunNumber, service: Service = Depends(get_service)
) -> RunPublic:
    """One run with its stages and jobs (`cicd report -p NAME --run N --format json`)."""
    return service.run(pipeline, number)


@router.get("/{pipeline}/{number}/stages/{stage:path}", response_model=StageRunPublic)
def get_stage(
    pipeline: PipelineName, number: RunNumber, stage: StageName,
    service: Service = Depends(get_service),
) -> StageRunPublic:
    """One stage of a run with its jobs (`cicd report ... --stage S`)."""
    return service.stage(pipeline, number, stage)


@router.get("/{pipeline}/{number}/job", response_model=JobRunPublic)
def get_job_by_name(
    pipeline: PipelineName, number: RunNumber, job: JobQuery,
    service: Service = Depends(get_service),
) -> JobRunPublic:
    """One job of a run, named by `?job=` (any name: `deploy/staging`, `build: [a, b]`, ...)."""
    return service.job(pipeline, number, job)


@router.get("/{pipeline}/{number}/jobs/{job:path}", response_model=JobRunPublic)
def get_job(
    pipeline: PipelineName, number: RunNumber, job: JobName,
    service: Service = Depends(get_service),
) -> JobRunPublic:
    """One job of a run (`cicd report ... --job J`); `/` in its name may stay as it is."""
    return service.job(pipeline, number, job)


MAX_RETRY_BODY = 1024 * 1024  # a retry's JSON: a job name, variables and secrets


class RetryBody(BaseModel):
    """What a retry is given (all optional): `cicd retry NAME#N [--job J] [--env] [--secret]`."""

    model_config = ConfigDict(extra="forbid")

    job: str | None = Field(
        default=None, max_length=NAME_MAX,
        description="re-run this job and what waits for it, instead of the failed jobs",
    )
    env: dict[str, str] = Field(
        default_factory=dict, max_length=1000,
        description="variables for the re-run jobs, on top of the run's own --env values",
    )
    secrets: dict[str, str] = Field(
        default_factory=dict, max_length=1000,
        description="passed to jobs, masked, never stored (a retry is given them again)",
    )
    jobs: int | None = Field(default=None, ge=1, description="run at most this many jobs at once")


def _retry(launcher: RunLauncher, pipeline: str, number: int, body: RetryBody) -> SubmissionPublic:
    return SubmissionPublic.of(
        launcher.retry(
            pipeline, number, job=body.job, env=body.env, secrets=body.secrets, jobs=body.jobs
        )
    )


@router.post(
    "/{pipeline}/{number}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SubmissionPublic,
    responses={
        400: {"model": ErrorPublic, "description": "Nothing to retry, or the run is open"},
        413: {"model": ErrorPublic, "description": "A body over 1 MiB"},
        422: {"model": ErrorPublic, "description": "The commit or file is gone"},
        429: {"model": ErrorPublic, "description": "The run queue is full (CICD_MAX_QUEUE)"},
    },
    openapi_extra={
        "requestBody": {
            "content": {"application/json": {"schema": RetryBody.model_json_schema()}}
        }
    },
)
async def retry_run(
    pipeline: PipelineName,
    number: RunNumber,
    request: Request,
    launcher: RunLauncher = Depends(get_launcher),
) -> SubmissionPublic:
    """Retry a finished run (`cicd retry`): a new run of its commit, file, overrides and --env
    values that re-runs its failed, canceled and skipped jobs (or `job`) and every job that
    waits for them; the others are REUSED, their log and artifacts carried over.

    The body (JSON, optional) is a `RetryBody`. The server must reach the commit itself: a
    repository URL it is allowed, or a commit a bundle brought before; else 422 (retry with
    `cicd retry` from the repository, which sends the commit).
    """
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_RETRY_BODY:
            raise HTTPException(413, "body over 1 MiB")
    try:
        body = RetryBody.model_validate_json(bytes(raw) or b"{}")
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None
    return await anyio.to_thread.run_sync(_retry, launcher, pipeline, number, body)


@router.post("/{pipeline}/{number}/cancel", response_model=CancelPublic)
def cancel_run(
    pipeline: PipelineName, number: RunNumber, launcher: RunLauncher = Depends(get_launcher)
) -> CancelPublic:
    """Cancel a PENDING or RUNNING run: its containers are killed, what did not run is CANCELED.

    Returns the status right after the request: RUNNING while the run is being stopped (follow
    `/events` to its end), or the final status of a run that was already over. A run still
    queued leaves the queue at once, CANCELED.
    """
    return CancelPublic(pipeline=pipeline, run=number, status=launcher.cancel(pipeline, number))
