"""One interface to history and runs, embedded or remote, so the CLI prints the same either way.

The ``Service`` itself is the local one (it has every method below); ``RemoteBackend``
(backend/remote.py) calls a cicd server's API over HTTP. CLI commands get one from
``open_backend`` and never know which it is. This module imports ``backend.service``, never
the other way round.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from backend.schemas import (
    ArtifactPublic,
    FlakyTestsPublic,
    JobRunPublic,
    PipelinesPublic,
    RunPublic,
    RunsPublic,
    StageRunPublic,
    Status,
)
from backend.service import Service
from backend.settings import Settings


class Backend(Protocol):
    """What the CLI's history commands need."""

    def pipelines(self, limit: int | None = None, cursor: str | None = None) -> PipelinesPublic:
        """Pipelines with runs, by name: every one, or at most ``limit``."""

    def runs(self, pipeline: str | None, limit: int | None = None, **filters: Any) -> RunsPublic:
        """Runs newest first, of a pipeline or (None) of every one: all that match, or at most
        ``limit``; ``filters`` are ``cursor``, ``status``, ``branch`` and ``since``."""

    def run(self, pipeline: str, number: int) -> RunPublic:
        """One run with stages and jobs."""

    def stage(self, pipeline: str, number: int, stage: str) -> StageRunPublic:
        """One stage of a run."""

    def job(self, pipeline: str, number: int, job: str) -> JobRunPublic:
        """One job of a run."""

    def log(self, pipeline: str, number: int, job: str, follow: bool = False) -> Iterator[str]:
        """The job's log lines (timestamped); with ``follow``, until the job ends."""

    def cancel(self, pipeline: str, number: int) -> Status:
        """Ask to cancel a run; its status as it stands after the request."""

    def artifacts(self, pipeline: str, number: int, job: str | None = None) -> list[ArtifactPublic]:
        """Artifacts of a run or of one job."""

    def download_artifact(
        self, pipeline: str, number: int, job: str, path: str, dest: Path
    ) -> None:
        """Write one artifact's bytes to ``dest``."""

    def flaky(self, pipeline: str, last: int = 50) -> FlakyTestsPublic:
        """Tests of a pipeline that both passed and failed over its ``last`` newest runs."""


def open_backend(settings: Settings, server: str | None) -> Backend:
    """The remote backend when a server is given (option or ``CICD_SERVER``), else the local one."""
    url = server or settings.server
    if url:
        from backend.remote import RemoteBackend
        from backend.tokens import client_token

        return RemoteBackend(url, token=client_token(settings, url))
    service = Service(settings)
    service.reconcile()
    return service
