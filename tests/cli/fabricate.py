"""A fabricated history for the CLI tests, and the real ``cicd`` to ask about it.

Runs are written through the real ``Store`` API into a SQLite store under a temporary
``CICD_HOME``, with real log and artifact files, so no Docker engine and no Prefect run is needed.
Commands run as the installed console script in a subprocess, exactly as a user runs them.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from backend.recording import log_path, stamp
from backend.schemas import JobTestsPublic, Status
from backend.settings import Settings
from backend.store import Store

CICD = Path(sys.executable).with_name("cicd")
T0 = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
COMMIT_1 = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
COMMIT_2 = "fedcba9876543210fedcba9876543210fedcba98"
WORKER = "ci-host/embedded-4242"


def at(seconds: float) -> datetime:
    """``seconds`` after T0."""
    return T0 + timedelta(seconds=seconds)


@dataclass
class Job:
    """A fabricated job run; times are seconds after T0 (None: never started or not finished)."""

    name: str
    image: str
    status: Status
    start: float | None = None
    end: float | None = None
    exit_code: int | None = None
    allow_failure: bool = False
    log: list[tuple[float, str]] | None = None  # (seconds after T0, text) lines of its log file
    artifacts: dict[str, bytes] = field(default_factory=dict)
    error: str | None = None
    tests: JobTestsPublic | None = None

    @property
    def allowed(self) -> bool:
        """It failed and was allowed to."""
        return self.allow_failure and self.status is Status.FAILED

    @property
    def started_at(self) -> datetime | None:
        """When it started."""
        return None if self.start is None else at(self.start)

    @property
    def finished_at(self) -> datetime | None:
        """When it finished."""
        return None if self.end is None else at(self.end)

    def log_lines(self) -> list[str]:
        """Its log lines as stored: timestamp, space, text."""
        return [f"{stamp(at(t))} {text}" for t, text in self.log or []]


@dataclass
class Stage:
    """A fabricated stage run."""

    name: str
    status: Status
    jobs: list[Job]
    start: float | None = None
    end: float | None = None

    @property
    def started_at(self) -> datetime | None:
        """When it started."""
        return None if self.start is None else at(self.start)

    @property
    def finished_at(self) -> datetime | None:
        """When it finished."""
        return None if self.end is None else at(self.end)


@dataclass
class Run:
    """A fabricated pipeline run; ``number`` is filled in when it is recorded."""

    pipeline: str
    status: Status
    commit: str
    branch: str | None
    stages: list[Stage]
    start: float | None = None
    end: float | None = None
    worker: str | None = WORKER
    started_at_override: datetime | None = None
    number: int = 0
    run_id: int = 0

    @property
    def started_at(self) -> datetime | None:
        """When it started."""
        if self.started_at_override is not None:
            return self.started_at_override
        return None if self.start is None else at(self.start)

    @property
    def finished_at(self) -> datetime | None:
        """When it finished."""
        return None if self.end is None else at(self.end)

    @property
    def name(self) -> str:
        """``NAME#N``."""
        return f"{self.pipeline}#{self.number}"

    def job(self, name: str) -> Job:
        """One of its jobs."""
        return next(j for s in self.stages for j in s.jobs if j.name == name)


@dataclass
class History:
    """A CICD_HOME with a store, and what was recorded in it."""

    home: Path
    settings: Settings
    store: Store
    runs: list[Run] = field(default_factory=list)

    def record(self, run: Run) -> Run:
        """Write ``run`` (stages, jobs, logs, artifacts) through the Store API."""
        stages = [
            (stage.name, [(j.name, j.image, j.allow_failure) for j in stage.jobs])
            for stage in run.stages
        ]
        run.run_id, run.number = self.store.create_run(
            run.pipeline, stages, repo="/src/project", branch=run.branch, commit=run.commit,
            file=".pipelines/pipeline.yaml", request_key=f"key-{len(self.runs)}",
        )
        self.store.set_run(
            run.run_id, status=run.status, started_at=run.started_at,
            finished_at=run.finished_at, worker=run.worker,
        )
        for stage in run.stages:
            self.store.set_stage(
                run.run_id, stage.name, status=stage.status, started_at=stage.started_at,
                finished_at=stage.finished_at,
            )
            for job in stage.jobs:
                self._record_job(run, job)
        self.runs.append(run)
        return run

    def _record_job(self, run: Run, job: Job) -> None:
        path = None
        if job.log is not None:
            file = log_path(self.settings.logs_dir, run.pipeline, run.number, job.name)
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text("".join(f"{line}\n" for line in job.log_lines()), encoding="utf-8")
            path = str(file)
        self.store.set_job(
            run.run_id, job.name, status=job.status, exit_code=job.exit_code,
            started_at=job.started_at, finished_at=job.finished_at, log_path=path,
            allowed=job.allowed or None, error=job.error,
        )
        if job.tests is not None:
            self.store.set_job_tests(run.run_id, job.name, job.tests)
        for relative, data in job.artifacts.items():
            stored = self.settings.artifacts_dir / str(run.run_id) / job.name / relative
            stored.parent.mkdir(parents=True, exist_ok=True)
            stored.write_bytes(data)
            self.store.add_artifact(
                run.run_id, job.name, relative, len(data), hashlib.sha256(data).hexdigest(),
                str(stored),
            )

    def get(self, name: str) -> Run:
        """A recorded run by ``NAME#N``."""
        return next(r for r in self.runs if r.name == name)


def build_1() -> Run:
    """build#1: everything passed."""
    return Run("build", Status.SUCCESS, COMMIT_1, "main", start=0, end=45, stages=[
        Stage("build", Status.SUCCESS, start=1, end=11, jobs=[
            Job("compile", "gcc:14", Status.SUCCESS, 1, 11, 0, log=[(2, "make all")]),
        ]),
        Stage("test", Status.SUCCESS, start=12, end=40, jobs=[
            Job("unit", "python:3.12-slim", Status.SUCCESS, 12, 40, 0),
            Job("lint", "python:3.12-slim", Status.SUCCESS, 12, 20, 0, allow_failure=True),
        ]),
        Stage("deploy", Status.SUCCESS, start=41, end=45, jobs=[
            Job("publish", "alpine:3.20", Status.SUCCESS, 41, 45, 0),
        ]),
    ])


def build_2() -> Run:
    """build#2: unit failed, lint failed but was allowed to, publish never ran."""
    return Run("build", Status.FAILED, COMMIT_2, "feature/x", start=3600, end=3725, stages=[
        Stage("build", Status.SUCCESS, start=3601, end=3666, jobs=[
            Job("compile", "gcc:14", Status.SUCCESS, 3601, 3666, 0,
                log=[(3602, "gcc -c main.c"), (3665, "gcc -o app main.o")],
                artifacts={"dist/app.bin": bytes(range(256)) * 9, "dist/notes.txt": b"v2\n"}),
        ]),
        Stage("test", Status.FAILED, start=3667, end=3725, jobs=[
            Job("unit", "python:3.12-slim", Status.FAILED, 3667, 3725, 1,
                log=[(3668, "collected 3 items"), (3700, "FAILED test_app.py::test_x"),
                     (3724, "1 failed, 2 passed")]),
            Job("lint", "python:3.12-slim", Status.FAILED, 3667, 3670, 2, allow_failure=True,
                log=[(3669, "app.py:1:1: F401 'os' imported but unused")]),
        ]),
        Stage("deploy", Status.CANCELED, jobs=[
            Job("publish", "alpine:3.20", Status.CANCELED),
        ]),
    ])


def docs_1() -> Run:
    """docs#1: one job, no branch (a detached commit)."""
    return Run("docs", Status.SUCCESS, COMMIT_1, None, start=7200, end=7205, stages=[
        Stage("doc", Status.SUCCESS, start=7200, end=7205, jobs=[
            Job("html", "python:3.12-slim", Status.SUCCESS, 7200, 7205, 0,
                log=[(7201, "building html"), (7204, "done")]),
        ]),
    ])


def live_worker() -> str:
    """A worker name whose process (this test process) is alive: reconcile leaves its runs."""
    return f"{socket.gethostname()}/embedded-{os.getpid()}"


def deploy_running() -> Run:
    """deploy#1: started 30 s ago; ``push`` is running, ``notify`` waits for it."""
    started = datetime.now(UTC) - timedelta(seconds=30)
    run = Run("deploy", Status.RUNNING, COMMIT_2, "main", worker=live_worker(),
              started_at_override=started, stages=[
                  Stage("ship", Status.RUNNING, jobs=[
                      Job("push", "alpine:3.20", Status.RUNNING, log=[]),
                      Job("notify", "alpine:3.20", Status.PENDING),
                  ]),
              ])
    return run


Cicd = Callable[..., subprocess.CompletedProcess[str]]


def cli_env(home: Path) -> dict[str, str]:
    """The environment of a ``cicd`` subprocess: this home, no server, UTC, wide tables.

    PREFECT_API_URL points at nothing: no history command may need (or start) a Prefect server.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("CICD_")}
    env.update(CICD_HOME=str(home), TZ="UTC", COLUMNS="200", NO_COLOR="1",
               PREFECT_API_URL="http://127.0.0.1:9/api")
    return env


def run_cicd(home: Path) -> Cicd:
    """A function that runs the real ``cicd`` console script against ``home``."""
    env = cli_env(home)

    def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CICD), *args], env=env, capture_output=True, text=True, timeout=timeout,
            check=False,
        )

    return run


def rows(output: str) -> list[str]:
    """The lines of a rich table (or any output), borders dropped and spaces squeezed."""
    cleaned = []
    for line in output.splitlines():
        words = line.translate(str.maketrans("│┃━─┼╇╋┡┩", "         ")).split()
        if words:
            cleaned.append(" ".join(words))
    return cleaned
