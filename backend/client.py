"""One interface to history and runs, embedded or remote, so the CLI prints the same either way.

The ``Service`` itself is the local one (it has every method below); ``RemoteBackend``
(backend/remote.py) calls a cicd server's API over HTTP. CLI commands get one from
``open_backend`` and never know which it is.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from backend.schemas import (
    ArtifactPublic,
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

    def pipelines(self) -> PipelinesPublic:
        """Every pipeline with runs."""

    def runs(self, pipeline: str) -> RunsPublic:
        """Every run of a pipeline, newest first."""

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


def follow_log(
    service: Service, pipeline: str, number: int, job: str, follow: bool, poll: float = 0.2
) -> Iterator[str]:
    """Lines of a job's log file; with ``follow``, keep reading until the job is over."""
    path: Path | None = None
    while path is None:
        try:
            path = service.log_file(pipeline, number, job)
        except Exception:
            if not follow or service.job(pipeline, number, job).status.finished:
                raise
            time.sleep(poll)
    with path.open(encoding="utf-8", errors="replace") as handle:
        buffer = ""
        while True:
            chunk = handle.readline()
            if chunk:
                buffer += chunk
                if buffer.endswith("\n"):
                    yield buffer.rstrip("\n")
                    buffer = ""
                continue
            if not follow or service.job(pipeline, number, job).status.finished:
                rest = handle.read()
                yield from (buffer + rest).splitlines()
                return
            time.sleep(poll)


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
