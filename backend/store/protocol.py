"""What the service and a run's recorder need of a history store, as a type.

``backend.store.Store`` (SQLAlchemy, SQLite or PostgreSQL) is the one implementation; code that
is handed a store (``Service``, ``Recorder``) types it as ``HistoryStore``, so it can be read
without SQLAlchemy and given a fake in a test. tests/test_service.py checks that ``Store`` has
every method here with compatible parameters.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from backend.schemas import (
    ArtifactPublic,
    FlakyTestsPublic,
    JobRunPublic,
    JobTestsPublic,
    PipelinesPublic,
    RunPublic,
    RunsPublic,
    StageRunPublic,
    Status,
)

if TYPE_CHECKING:
    from backend.store.records import JobRow, ReusedArtifact


@runtime_checkable
class HistoryStore(Protocol):
    """Runs, stages, jobs and artifacts: recorded by runs, read by the CLI and the API."""

    # -- a run's life ------------------------------------------------------------------------

    def create_run(
        self,
        pipeline: str,
        stages: list[tuple[str, list[JobRow]]],
        *,
        repo: str,
        branch: str | None,
        commit: str,
        file: str,
        request_key: str,
        overrides: list[str] | None = None,
        env: dict[str, str] | None = None,
        retry_of: int | None = None,
    ) -> tuple[int, int]:
        """Record a new PENDING run with its stages and jobs; ``(run_id, number)``."""
        ...

    def set_run(
        self,
        run_id: int,
        *,
        status: Status | None = None,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
        worker: str | None = None,
        error: str | None = None,
        flow_run_id: str | None = None,
        heartbeat_at: datetime | None = None,
    ) -> None:
        """Change the given fields of a run."""
        ...

    def set_stage(
        self,
        run_id: int,
        stage: str,
        *,
        status: Status | None = None,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
    ) -> None:
        """Change the given fields of one stage of a run."""
        ...

    def set_job(self, run_id: int, job: str, **fields: Any) -> None:
        """Change the given fields of one job of a run."""
        ...

    def set_job_tests(self, run_id: int, job: str, tests: JobTestsPublic) -> None:
        """Record what the JUnit reports of one job of a run counted."""
        ...

    def add_test_cases(self, run_id: int, job: str, cases: list[tuple[str, str]]) -> int:
        """Keep the outcome of each test case of one job of a run."""
        ...

    def settle_run(
        self,
        run_id: int,
        status: Status,
        *,
        error: str | None = None,
        at: datetime | None = None,
        if_open: bool = False,
    ) -> bool:
        """End a run and close whatever of it is still open; True if the run changed."""
        ...

    def find_active_duplicate(self, request_key: str) -> tuple[int, int] | None:
        """``(run_id, number)`` of a PENDING or RUNNING run with this request key, if any."""
        ...

    def open_runs(self) -> list[tuple[int, str, int, str | None]]:
        """``(run_id, pipeline, number, flow_run_id)`` of every PENDING or RUNNING run."""
        ...

    def lapsed_runs(self, before: datetime) -> list[tuple[int, str, int, str | None, str | None]]:
        """``(run_id, pipeline, number, worker, flow_run_id)`` of open runs whose lease lapsed."""
        ...

    def rehome_files(self, run_id: int, old_root: str, new_root: str) -> int:
        """Point a run's log and artifact paths under ``old_root`` to ``new_root``."""
        ...

    def reuse_job(self, run_id: int, job: str, source_run_id: int) -> list[ReusedArtifact]:
        """Record a job as REUSED from the same job of another run; its artifacts."""
        ...

    def claim_delivery(self, provider: str, delivery: str, keep: int = 10_000) -> list[str] | None:
        """Remember a webhook delivery: None when new, else the runs it started before."""
        ...

    def settle_delivery(self, provider: str, delivery: str, runs: list[str] | None) -> None:
        """Record the runs a claimed delivery started; None forgets the delivery."""
        ...

    # -- reads -------------------------------------------------------------------------------

    def list_pipelines(
        self, limit: int | None = None, cursor: str | None = None
    ) -> PipelinesPublic:
        """Pipelines with runs, by name."""
        ...

    def list_runs(
        self, pipeline: str | None, limit: int | None = None, **filters: Any
    ) -> RunsPublic:
        """Runs newest first, of a pipeline or of all."""
        ...

    def get_run(self, pipeline: str, number: int) -> RunPublic:
        """Run ``pipeline#number`` with its stages and jobs."""
        ...

    def flaky_tests(self, pipeline: str, last: int = 50) -> FlakyTestsPublic:
        """Tests that both passed and failed over a pipeline's ``last`` newest runs."""
        ...

    def get_stage(self, pipeline: str, number: int, stage: str) -> StageRunPublic:
        """One stage of a run."""
        ...

    def get_job(self, pipeline: str, number: int, job: str) -> JobRunPublic:
        """One job of a run."""
        ...

    def run_id(self, pipeline: str, number: int) -> int:
        """The store id of run ``pipeline#number``."""
        ...

    def run_env(self, pipeline: str, number: int) -> dict[str, str]:
        """The ``--env`` values run ``pipeline#number`` was given."""
        ...

    def job_log_path(self, pipeline: str, number: int, job: str) -> str | None:
        """Where a job's log is (None before it started)."""
        ...

    def list_artifacts(
        self, pipeline: str, number: int, job: str | None = None
    ) -> list[ArtifactPublic]:
        """Artifacts of a run, or of one of its jobs."""
        ...

    def artifact_file(self, pipeline: str, number: int, job: str, path: str) -> str:
        """Where an artifact's bytes are stored."""
        ...
