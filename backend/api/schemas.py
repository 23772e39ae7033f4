"""Request and response shapes of the API where they differ from ``backend.schemas``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import BaseModel, Field, ValidationError

from backend.schemas import Status
from backend.service import RunRequest, Submission
from backend.store.queries import MAX_PAGE

# Names come from pipeline files, where they are one printable line of at most 255 characters:
# anything else cannot name a thing, and a NUL would not even reach PostgreSQL.
NAME_PATTERN = r"^[^\x00-\x1f\x7f]+$"
NAME_MAX = 1000
PipelineName = Annotated[
    str, Path(description="the pipeline's name", max_length=NAME_MAX, pattern=NAME_PATTERN)
]
StageName = Annotated[
    str, Path(description="the stage's name", max_length=NAME_MAX, pattern=NAME_PATTERN)
]
JobName = Annotated[
    str, Path(description="the job's name", max_length=NAME_MAX, pattern=NAME_PATTERN)
]
JobQuery = Annotated[
    str,
    Query(
        description="the job's name (any name, `/` included)",
        max_length=NAME_MAX,
        pattern=NAME_PATTERN,
    ),
]
# the store's columns are 32-bit: a bigger number is no run, and must not reach the database
RunNumber = Annotated[int, Path(ge=1, le=2**31 - 1, description="the run's number (N of NAME#N)")]


PageLimit = Annotated[
    int | None,
    Query(
        ge=1,
        le=MAX_PAGE,
        description=f"at most this many items (default and most: {MAX_PAGE}); the answer's "
        "`next` is the cursor of the following page",
    ),
]
PageCursor = Annotated[
    str | None,
    Query(
        max_length=1200,
        description="where the page starts: the `next` of the page before (opaque)",
    ),
]


class SubmissionPublic(BaseModel):
    """The answer to a submitted run: the run it started, or the identical one still running."""

    pipeline: str
    run: int
    name: str = Field(description="NAME#N")
    duplicate: bool = Field(description="true when an identical run was running and is returned")

    @classmethod
    def of(cls, submission: Submission) -> SubmissionPublic:
        """The public form of a ``Submission``."""
        return cls(
            pipeline=submission.pipeline, run=submission.number, name=submission.name,
            duplicate=submission.duplicate,
        )


class CancelPublic(BaseModel):
    """A run's status right after a cancel request (RUNNING while its jobs are being stopped)."""

    pipeline: str
    run: int
    status: Status


class CheckPublic(BaseModel):
    """Whether one dependency of the server answers."""

    ok: bool
    detail: str | None = None


class HealthPublic(BaseModel):
    """The server's health: ``ok`` when the history store and the Prefect API both answer."""

    status: str = Field(description="ok or degraded")
    version: str
    store: CheckPublic
    prefect: CheckPublic
    prefect_url: str | None = None


class ErrorPublic(BaseModel):
    """Every error answer: one line saying what is wrong and where."""

    detail: str


def parse_run_request(text: str) -> RunRequest:
    """The ``request`` form field as a ``RunRequest`` (RequestValidationError when it is not)."""
    from fastapi.exceptions import RequestValidationError

    try:
        return RunRequest.model_validate_json(text)
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", "request", *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors) from None


ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorPublic, "description": "Bad request, or a Host this server does not serve"},
    401: {"model": ErrorPublic, "description": "Missing or wrong API token, or sent by a web page"},
    404: {"model": ErrorPublic, "description": "No such pipeline, run, stage, job or artifact"},
}
