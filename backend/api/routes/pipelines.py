"""``/pipelines``: every pipeline with runs, and the runs of one (``cicd report [-p NAME]``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from backend.api.deps import get_service
from backend.api.schemas import ERRORS, PageCursor, PageLimit, PipelineName
from backend.schemas import FlakyTestsPublic, PipelinesPublic, RunsPublic
from backend.service import Service
from backend.store.flaky import MAX_LAST
from backend.store.queries import MAX_PAGE

router = APIRouter(tags=["pipelines"], responses=ERRORS)


@router.get("/pipelines", response_model=PipelinesPublic)
def list_pipelines(
    limit: PageLimit = None, cursor: PageCursor = None, service: Service = Depends(get_service)
) -> PipelinesPublic:
    """Every pipeline that has runs, by name, with its last run (`cicd report --format json`).

    A page holds `limit` pipelines (at most and by default 1000); `next` is the cursor of the
    following one (`?cursor=`), null on the last.
    """
    return service.pipelines(limit or MAX_PAGE, cursor)


@router.get("/pipelines/{pipeline}/runs", response_model=RunsPublic)
def list_runs(
    pipeline: PipelineName,
    limit: PageLimit = None,
    cursor: PageCursor = None,
    service: Service = Depends(get_service),
) -> RunsPublic:
    """Runs of a pipeline, newest first, without stages (`cicd report -p NAME`), a page at a
    time: `limit` (at most and by default 1000) and `next`, as `/runs?pipeline=` answers."""
    return service.runs(pipeline, limit or MAX_PAGE, cursor=cursor)


FlakyLast = Annotated[
    int,
    Query(ge=1, le=MAX_LAST, description=f"the newest runs to look at (1 to {MAX_LAST})"),
]


@router.get("/pipelines/{pipeline}/flaky", response_model=FlakyTestsPublic)
def flaky_tests(
    pipeline: PipelineName, last: FlakyLast = 50, service: Service = Depends(get_service)
) -> FlakyTestsPublic:
    """Flaky tests of a pipeline (`cicd report -p NAME --flaky`): the JUnit test cases that
    both passed and failed on the same commit, or flipped between passing and failing from one
    run to the next, over its `last` newest runs; those seen on one commit first."""
    return service.flaky(pipeline, last)
