"""``/pipelines``: every pipeline with runs, and the runs of one (``cicd report [-p NAME]``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from backend.api.deps import get_service
from backend.api.schemas import ERRORS, PipelineName
from backend.schemas import PipelinesPublic, RunsPublic
from backend.service import Service

router = APIRouter(tags=["pipelines"], responses=ERRORS)


@router.get("/pipelines", response_model=PipelinesPublic)
def list_pipelines(service: Service = Depends(get_service)) -> PipelinesPublic:
    """Every pipeline that has runs, with its last run (`cicd report --format json`)."""
    return service.pipelines()


@router.get("/pipelines/{pipeline}/runs", response_model=RunsPublic)
def list_runs(pipeline: PipelineName, service: Service = Depends(get_service)) -> RunsPublic:
    """Every run of a pipeline, newest first, without stages (`cicd report -p NAME`)."""
    return service.runs(pipeline)
