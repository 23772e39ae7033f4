"""Public shapes of history records: what the store returns, the API serves and the CLI renders.

Field names and order follow SPEC §3.1 exactly; ``model_dump(mode="json")`` of these objects *is*
the machine-readable output (scripts depend on it).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_serializer, model_validator


class Status(StrEnum):
    """State of a pipeline run, stage run or job run."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    SKIPPED = "SKIPPED"  # did not run: what it waited for failed (or was skipped), or its `when:`
    MANUAL = "MANUAL"  # a `when: manual` job the run did not start
    REUSED = "REUSED"  # a job `cicd retry` carried over from an earlier run (it succeeded there)

    @property
    def finished(self) -> bool:
        """True for every status but PENDING and RUNNING: nothing about it will change."""
        return self not in (Status.PENDING, Status.RUNNING)


def iso(value: datetime | None) -> str | None:
    """ISO 8601 with an explicit UTC offset, or None."""
    if value is None:
        return None
    from datetime import UTC

    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


class _Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    @field_serializer("started_at", "finished_at", check_fields=False)
    def _times(self, value: datetime | None) -> str | None:
        return iso(value)


class JobTestsPublic(BaseModel):
    """What a job's JUnit reports (``artifacts: reports: junit``) counted, over all its files."""

    model_config = ConfigDict(from_attributes=True)

    total: int = Field(description="test cases")
    failed: int = Field(description="test cases with a <failure>")
    errors: int = Field(description="test cases with an <error>")
    skipped: int = Field(description="test cases with a <skipped>")
    time: float = Field(description="seconds, the sum of the test cases' time")
    failed_names: list[str] = Field(
        default_factory=list,
        description="'classname.name' of failed and erroring test cases, the first 50",
    )

    @property
    def passed(self) -> int:
        """Test cases that neither failed, errored nor were skipped."""
        return max(0, self.total - self.failed - self.errors - self.skipped)


class JunitPublic(BaseModel):
    """A job's JUnit results as ``cicd report`` and the API show them (from ``tests``)."""

    tests: int = Field(description="test cases")
    passed: int = Field(description="test cases that neither failed, errored nor were skipped")
    failed: int = Field(description="test cases with a <failure>")
    errors: int = Field(description="test cases with an <error>")
    skipped: int = Field(description="test cases with a <skipped>")
    failed_names: list[str] = Field(
        default_factory=list,
        description="'classname.name' of failed and erroring test cases, the first 50",
    )

    @classmethod
    def of(cls, tests: JobTestsPublic | None) -> JunitPublic | None:
        """The summary of ``tests`` (None when the job left no report)."""
        if tests is None:
            return None
        return cls(
            tests=tests.total,
            passed=tests.passed,
            failed=tests.failed,
            errors=tests.errors,
            skipped=tests.skipped,
            failed_names=list(tests.failed_names),
        )


class JobRunPublic(_Public):
    """One job of one run (SPEC §3.1, plus ``allowed``, ``tests`` and what it used)."""

    name: str
    status: Status
    allow_failure: bool
    exit_code: int | None
    image: str
    started_at: datetime | None
    finished_at: datetime | None
    allowed: bool = Field(
        default=False, description="it FAILED and was allowed to (allow_failure, exit_codes)"
    )
    error: str | None = Field(
        default=None,
        description="why it failed or did not run (e.g. 'skipped: build failed'), secrets masked",
    )
    tests: JobTestsPublic | None = Field(
        default=None, description="its JUnit reports' counts; null when it left no report"
    )
    junit: JunitPublic | None = Field(
        default=None,
        description="its JUnit results (tests, passed, failed, errors, skipped, failed_names); "
        "null when it left no report",
    )
    memory_peak_bytes: int | None = Field(
        default=None, description="its container's peak memory; null when not measured"
    )
    cpu_seconds: float | None = Field(
        default=None,
        description="CPU time its container used (user + system); null when not measured",
    )
    needs: list[str] | None = Field(
        default=None,
        description="the jobs it waited for; [] none; null when it had no `needs` keyword "
        "(stage order applied) or was recorded before cicd kept them",
    )
    reused_from: int | None = Field(
        default=None,
        description="REUSED: the number of the earlier run of this pipeline that ran it (its "
        "log and artifacts are that run's); null otherwise",
    )

    @model_validator(mode="after")
    def _summarise(self) -> JobRunPublic:
        if self.junit is None and self.tests is not None:
            self.junit = JunitPublic.of(self.tests)
        return self


class StageRunPublic(_Public):
    """One stage of one run, with its jobs in plan order (SPEC §3.1)."""

    name: str
    status: Status
    started_at: datetime | None
    finished_at: datetime | None
    jobs: list[JobRunPublic]


class RunSummary(_Public):
    """A run without its stages: one row of ``cicd report -p NAME``."""

    pipeline: str
    run: int
    status: Status
    commit: str
    branch: str | None
    started_at: datetime | None
    finished_at: datetime | None
    worker: str | None


class RunPublic(RunSummary):
    """A whole run with stages and jobs: ``cicd report -p NAME --run N --format json``."""

    stages: list[StageRunPublic]
    repo: str | None = Field(
        default=None, description="the repository it ran (a URL's credentials hidden)"
    )
    file: str | None = Field(default=None, description="the pipeline file, in the repository")
    overrides: list[str] = Field(
        default_factory=list, description="its --override KEY=VALUE values"
    )
    retry_of: int | None = Field(
        default=None, description="the run it retries (cicd retry), by number; null otherwise"
    )


class RunsPublic(BaseModel):
    """Runs of one pipeline (or, ``pipeline`` null, of every pipeline), newest first.

    ``next`` is the cursor of the following page (``?cursor=``), null on the last one.
    """

    pipeline: str | None
    runs: list[RunSummary]
    next: str | None = Field(
        default=None, description="cursor of the next page (?cursor=); null on the last page"
    )


class PipelineSummary(_Public):
    """One pipeline known to the store: ``cicd report`` with no options."""

    pipeline: str
    runs: int
    last_run: int | None
    last_status: Status | None
    last_started_at: datetime | None

    @field_serializer("last_started_at")
    def _last(self, value: datetime | None) -> str | None:
        return iso(value)


class PipelinesPublic(BaseModel):
    """Every pipeline known to the store, by name (a page of them when ``next`` is set)."""

    pipelines: list[PipelineSummary]
    next: str | None = Field(
        default=None, description="cursor of the next page (?cursor=); null on the last page"
    )


class ArtifactPublic(BaseModel):
    """One collected artifact file."""

    model_config = ConfigDict(from_attributes=True)

    job: str
    path: str
    size: int
    sha256: str


class FlakyTestPublic(BaseModel):
    """A test that both passed and failed in a pipeline's recent runs."""

    job: str = Field(description="the job whose JUnit report holds it")
    name: str = Field(description="'classname.name'")
    passed: int = Field(description="times it passed")
    failed: int = Field(description="times it failed or errored")
    flips: int = Field(description="times it changed between passing and failing, run to run")
    same_commit: list[str] = Field(
        default_factory=list, description="commits on which it both passed and failed"
    )
    last_run: int = Field(description="the newest run it ran in")
    last_outcome: str = Field(description="passed, failed or error in that run")


class FlakyTestsPublic(BaseModel):
    """Flaky tests of a pipeline over its last ``last`` runs: those that both passed and failed
    on the same commit first, then by flips."""

    pipeline: str
    last: int = Field(description="how many of the newest runs were looked at")
    runs: int = Field(description="how many runs that was (fewer when the pipeline has fewer)")
    tests: list[FlakyTestPublic]
