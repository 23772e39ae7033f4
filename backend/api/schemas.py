"""Request and response shapes of the API where they differ from ``backend.schemas``."""

from __future__ import annotations

from pydantic import BaseModel, Field, ValidationError

from backend.schemas import Status
from backend.service import RunRequest, Submission


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
    400: {"model": ErrorPublic, "description": "A usage error"},
    401: {"model": ErrorPublic, "description": "Missing or wrong API token"},
    404: {"model": ErrorPublic, "description": "No such pipeline, run, stage, job or artifact"},
}
