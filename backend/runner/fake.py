"""An in-memory runner with scripted results, for flow, service and API tests without Docker.

Each job's behaviour is a ``FakeOutcome`` (exit code, lines, seconds). A job waits its seconds in
short steps so ``cancel`` works as it does with real containers; every call is recorded. A job's
``after_script`` "runs" after that, whatever happened, as the Docker runner runs it: its commands
are echoed (``$ command``) and never change the outcome.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from backend.runner.base import FakeOutcome, JobResult, JobSpec, LineSink, Outcome, PullPolicy


@dataclass
class FakeCall:
    """One recorded ``run_job`` call."""

    spec: JobSpec
    started: float
    finished: float = 0.0
    outcome: Outcome | None = None


@dataclass
class FakeRunner:
    """Runs nothing: returns scripted outcomes per job name (default: success, no output)."""

    outcomes: dict[str, FakeOutcome | list[FakeOutcome]] = field(default_factory=dict)
    missing_images: set[str] = field(default_factory=set)
    calls: list[FakeCall] = field(default_factory=list)
    # every ensure_images call: (the images, the policy), in order
    image_calls: list[tuple[list[str], PullPolicy]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _attempts: dict[str, int] = field(default_factory=dict, repr=False)

    def check(self) -> None:
        """The fake engine is always there."""

    def ensure_images(self, images: Iterable[str], policy: PullPolicy) -> dict[str, str | None]:
        """Every image is present except those in ``missing_images``; the call is recorded."""
        images = list(images)
        with self._lock:
            self.image_calls.append((images, PullPolicy(policy)))
        return {
            image: (f"image '{image}' not found" if image in self.missing_images else None)
            for image in images
        }

    def _outcome(self, job: str) -> FakeOutcome:
        with self._lock:
            attempt = self._attempts.get(job, 0)
            self._attempts[job] = attempt + 1
        scripted = self.outcomes.get(job, FakeOutcome())
        if isinstance(scripted, list):
            return scripted[min(attempt, len(scripted) - 1)]
        return scripted

    def run_job(self, spec: JobSpec, on_line: LineSink, cancel: threading.Event) -> JobResult:
        """Emit the scripted lines, wait the scripted time (or until cancel), return its result."""
        outcome = self._outcome(spec.job)
        call = FakeCall(spec=spec, started=time.monotonic())
        with self._lock:
            self.calls.append(call)
        started = datetime.now(UTC)
        for line in outcome.lines:
            on_line(line)
        deadline = call.started + outcome.seconds
        limit = call.started + spec.timeout if spec.timeout is not None else None
        result_outcome = Outcome.SUCCESS if outcome.exit_code == 0 else Outcome.FAILED
        exit_code: int | None = outcome.exit_code
        error: str | None = None
        while time.monotonic() < deadline:
            if cancel.is_set():
                result_outcome, exit_code, error = Outcome.CANCELED, None, "canceled"
                break
            if limit is not None and time.monotonic() >= limit:
                result_outcome, exit_code = Outcome.FAILED, None
                error = f"timed out after {spec.timeout:g}s"
                break
            time.sleep(min(0.01, max(0.0, deadline - time.monotonic())))
        for command in spec.after_script:  # nothing runs: the echo shows where it would
            on_line(f"$ {command}")
        call.finished = time.monotonic()
        call.outcome = result_outcome
        return JobResult(
            outcome=result_outcome,
            exit_code=exit_code,
            started_at=started,
            finished_at=datetime.now(UTC),
            error=error,
            log_lines=len(outcome.lines) + len(spec.after_script),
            memory_peak_bytes=outcome.memory_peak_bytes,
            cpu_seconds=outcome.cpu_seconds,
        )

    def remove_run_containers(self, run_id: str) -> int:
        """There are never containers to remove."""
        return 0

    def call(self, job: str) -> FakeCall:
        """The last recorded call of ``job``."""
        for call in reversed(self.calls):
            if call.spec.job == job:
                return call
        raise KeyError(job)
