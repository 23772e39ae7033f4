"""``/runs/{pipeline}/{number}/artifacts``: list and download the files jobs collected."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse

from backend.api.deps import get_service
from backend.api.schemas import ERRORS, NAME_MAX, JobName, JobQuery, PipelineName, RunNumber
from backend.errors import NotFound
from backend.schemas import ArtifactPublic
from backend.service import Service

router = APIRouter(prefix="/runs", tags=["artifacts"], responses=ERRORS)


@router.get("/{pipeline}/{number}/artifacts", response_model=list[ArtifactPublic])
def list_artifacts(
    pipeline: PipelineName,
    number: RunNumber,
    job: Annotated[
        str | None, Query(description="only this job's artifacts", max_length=NAME_MAX)
    ] = None,
    service: Service = Depends(get_service),
) -> list[ArtifactPublic]:
    """The artifacts of a run, or of one of its jobs: path, size and sha256 of each file."""
    if job is not None:
        service.job(pipeline, number, job)  # an unknown job is a 404, not an empty list
    return service.artifacts(pipeline, number, job)


FILE_RESPONSE: dict[int | str, dict[str, object]] = {
    200: {"content": {"application/octet-stream": {}}, "description": "The file"}
}


@router.get("/{pipeline}/{number}/artifact", response_class=FileResponse, responses=FILE_RESPONSE)
def download_artifact_by_name(
    pipeline: PipelineName,
    number: RunNumber,
    job: JobQuery,
    path: Annotated[str, Query(description="the artifact's recorded path", max_length=4096)],
    service: Service = Depends(get_service),
) -> FileResponse:
    """One artifact's bytes, its job and path given as `?job=&path=` (any job name)."""
    return _file(service, pipeline, number, job, path)


@router.get(
    "/{pipeline}/{number}/artifacts/{job}/{path:path}",
    response_class=FileResponse,
    responses=FILE_RESPONSE,
)
def download_artifact(
    pipeline: PipelineName, number: RunNumber, job: JobName, path: str,
    service: Service = Depends(get_service),
) -> FileResponse:
    """One artifact's bytes. Only paths the store recorded for the job are served."""
    return _file(service, pipeline, number, job, path)


def _file(service: Service, pipeline: str, number: int, job: str, path: str) -> FileResponse:
    stored = service.artifact_file(pipeline, number, job, path)
    if not stored.is_file():
        raise NotFound(f"artifact '{path}' of {pipeline}#{number} is recorded but its file is gone")
    return FileResponse(
        stored, media_type="application/octet-stream", filename=PurePosixPath(path).name
    )
