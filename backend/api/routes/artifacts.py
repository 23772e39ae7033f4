"""``/runs/{pipeline}/{number}/artifacts``: list and download the files jobs collected."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse

from backend.api.deps import get_service
from backend.api.schemas import ERRORS
from backend.errors import NotFound
from backend.schemas import ArtifactPublic
from backend.service import Service

router = APIRouter(prefix="/runs", tags=["artifacts"], responses=ERRORS)


@router.get("/{pipeline}/{number}/artifacts", response_model=list[ArtifactPublic])
def list_artifacts(
    pipeline: str,
    number: int,
    job: Annotated[str | None, Query(description="only this job's artifacts")] = None,
    service: Service = Depends(get_service),
) -> list[ArtifactPublic]:
    """The artifacts of a run, or of one of its jobs: path, size and sha256 of each file."""
    if job is not None:
        service.job(pipeline, number, job)  # an unknown job is a 404, not an empty list
    return service.artifacts(pipeline, number, job)


@router.get(
    "/{pipeline}/{number}/artifacts/{job}/{path:path}",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "The file"}},
)
def download_artifact(
    pipeline: str, number: int, job: str, path: str, service: Service = Depends(get_service)
) -> FileResponse:
    """One artifact's bytes. Only paths the store recorded for the job are served."""
    stored = service.artifact_file(pipeline, number, job, path)
    if not stored.is_file():
        raise NotFound(f"artifact '{path}' of {pipeline}#{number} is recorded but its file is gone")
    return FileResponse(
        stored, media_type="application/octet-stream", filename=PurePosixPath(path).name
    )
