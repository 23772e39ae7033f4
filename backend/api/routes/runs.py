"""``/runs``: submit a run, read one run, one of its stages or jobs, cancel it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile, status

from backend.api.deps import get_launcher, get_service
from backend.api.launcher import RunLauncher
from backend.api.schemas import (
    ERRORS,
    CancelPublic,
    ErrorPublic,
    SubmissionPublic,
    parse_run_request,
)
from backend.schemas import JobRunPublic, RunPublic, RunsPublic, StageRunPublic
from backend.service import Service

router = APIRouter(prefix="/runs", tags=["runs"], responses=ERRORS)

REQUEST_HELP = (
    "The run request as JSON (RunRequest: pipeline, plan, file, file_content, repo, branch, "
    "commit, overrides, env, secrets, jobs, pull, force)."
)
BUNDLE_HELP = (
    "A git bundle holding the commit (`git bundle create`); without it the server looks for the "
    "commit in `repo`, which must then be a path or URL the server can reach."
)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SubmissionPublic,
    responses={422: {"model": ErrorPublic, "description": "Unknown commit or invalid file"}},
)
def submit_run(
    request: Annotated[str, Form(description=REQUEST_HELP)],
    bundle: Annotated[UploadFile | None, File(description=BUNDLE_HELP)] = None,
    launcher: RunLauncher = Depends(get_launcher),
) -> SubmissionPublic:
    """Submit a run; it is executed in the background (follow it with `/events`).

    The pipeline file is read from the commit and validated again. A request identical to a
    run still PENDING or RUNNING (same repo, commit, pipeline and file) returns that run with
    `duplicate: true`, unless `force` is set.
    """
    run_request = parse_run_request(request)
    data = bundle.file.read() if bundle is not None else None
    return SubmissionPublic.of(launcher.submit(run_request, data))


@router.get("", response_model=RunsPublic)
def list_runs(
    pipeline: Annotated[str, Query(description="the pipeline's name")],
    service: Service = Depends(get_service),
) -> RunsPublic:
    """Every run of a pipeline, newest first (the same as `/pipelines/{pipeline}/runs`)."""
    return service.runs(pipeline)


@router.get("/{pipeline}/{number}", response_model=RunPublic)
def get_run(pipeline: str, number: int, service: Service = Depends(get_service)) -> RunPublic:
    """One run with its stages and jobs (`cicd report -p NAME --run N --format json`)."""
    return service.run(pipeline, number)


@router.get("/{pipeline}/{number}/stages/{stage}", response_model=StageRunPublic)
def get_stage(
    pipeline: str, number: int, stage: str, service: Service = Depends(get_service)
) -> StageRunPublic:
    """One stage of a run with its jobs (`cicd report ... --stage S`)."""
    return service.stage(pipeline, number, stage)


@router.get("/{pipeline}/{number}/jobs/{job}", response_model=JobRunPublic)
def get_job(
    pipeline: str, number: int, job: str, service: Service = Depends(get_service)
) -> JobRunPublic:
    """One job of a run (`cicd report ... --job J`)."""
    return service.job(pipeline, number, job)


@router.post("/{pipeline}/{number}/cancel", response_model=CancelPublic)
def cancel_run(
    pipeline: str, number: int, service: Service = Depends(get_service)
) -> CancelPublic:
    """Cancel a PENDING or RUNNING run: its containers are killed, what did not run is CANCELED.

    Returns the status right after the request: RUNNING while the run is being stopped (follow
    `/events` to its end), or the final status of a run that was already over.
    """
    return CancelPublic(pipeline=pipeline, run=number, status=service.cancel(pipeline, number))
