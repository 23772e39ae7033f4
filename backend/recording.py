"""Recording a run as it happens: store rows, one log file per job, and live events.

Everything a job prints passes through ``Recorder.job_line`` once: masked, timestamped into the
job's own log file, and handed to the live sink (the CLI's printer, the server's followers).
Store writes go through one writer thread in order, so a job never waits on the database.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from backend.masking import Masker
from backend.paths import safe_child
from backend.schemas import JobTestsPublic, Status

EventKind = Literal[
    "run_started",
    "stage_started",
    "job_started",
    "line",
    "job_finished",
    "stage_finished",
    "run_finished",
    "warning",
]


@dataclass(frozen=True)
class Event:
    """One thing that happened in a run, for live display."""

    kind: EventKind
    run: str
    stage: str | None = None
    job: str | None = None
    text: str | None = None
    status: Status | None = None
    exit_code: int | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


Sink = Callable[[Event], None]


def log_path(logs_dir: Path, pipeline: str, number: int, job: str) -> Path:
    """Where the log of ``job`` in run ``pipeline#number`` is kept.

    Names never become paths as given (``safe_child``): a job named ``../x`` or ``/tmp/x`` stays
    inside ``logs_dir``, and ``a/b`` and ``a b`` get a log each. Raises ``UnsafePath`` otherwise.
    """
    run_dir = safe_child(logs_dir, pipeline) / str(int(number))
    return safe_child(run_dir, job, ".log")


def stamp(at: datetime) -> str:
    """The timestamp written before each log line (UTC, milliseconds)."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


class StoreWriter:
    """Applies store calls in order on one background thread, off the jobs' critical path."""

    def __init__(self, on_error: Callable[[str], None]) -> None:
        self._queue: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]] | None]
        self._queue = queue.Queue()
        self._on_error = on_error
        self._closed = False
        self._closing = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="cicd-store-writer", daemon=True)
        self._thread.start()

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
        """Queue ``fn(*args, **kwargs)``; False (nothing queued) once the writer is closed."""
        with self._closing:
            if self._closed:
                return False
            self._queue.put((fn, args, kwargs))
        return True

    def flush(self) -> None:
        """Wait until every queued call has been applied."""
        self._queue.join()

    def close(self) -> None:
        """Apply what is queued and stop the thread."""
        with self._closing:
            self._closed = True
            self._queue.put(None)
        self._thread.join()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                fn, args, kwargs = item
                try:
                    fn(*args, **kwargs)
                except Exception as exc:  # a lost row must be said, never silent
                    self._on_error(f"history store write failed: {exc}")
            finally:
                self._queue.task_done()


class Recorder:
    """Writes one run's transitions to the store, its job logs to files, and events to sinks."""

    def __init__(
        self,
        store: Any,
        run_id: int,
        pipeline: str,
        number: int,
        logs_dir: Path,
        masker: Masker | None = None,
        sinks: list[Sink] | None = None,
        worker: str | None = None,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.pipeline = pipeline
        self.number = number
        self.name = f"{pipeline}#{number}"
        self.logs_dir = logs_dir
        self.masker = masker or Masker(())
        self.sinks = list(sinks or [])
        self.worker = worker
        self._files: dict[str, IO[str]] = {}
        self._lock = threading.Lock()
        self._writer = StoreWriter(self.warning)

    # -- events -----------------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        """Hand ``event`` to every sink; a failing sink never fails the run."""
        for sink in self.sinks:
            try:
                sink(event)
            except Exception:
                pass

    def warning(self, text: str) -> None:
        """A warning about the run (shown live, not stored in a job log)."""
        self.emit(Event("warning", self.name, text=self.masker.mask(text)))

    # -- run ---------------------------------------------------------------------------------

    def run_started(self, flow_run_id: str | None = None) -> None:
        """The run is RUNNING."""
        now = datetime.now(UTC)
        self._writer.call(
            self.store.set_run,
            self.run_id,
            status=Status.RUNNING,
            started_at=now,
            worker=self.worker,
            flow_run_id=flow_run_id,
        )
        self.emit(Event("run_started", self.name, at=now))

    def flow_run_attached(self, flow_run_id: str) -> None:
        """The run, started before its Prefect flow run (a head start), now has one (maybe
        after it ended: then the writer is closed and the store is written here)."""
        if not self._writer.call(self.store.set_run, self.run_id, flow_run_id=flow_run_id):
            self.store.set_run(self.run_id, flow_run_id=flow_run_id)

    def run_finished(self, status: Status, error: str | None = None) -> None:
        """The run is over: close logs, settle anything still open, flush the store."""
        now = datetime.now(UTC)
        self._writer.call(self.store.settle_run, self.run_id, status, error=error, at=now)
        self.close()
        self.emit(Event("run_finished", self.name, status=status, text=error, at=now))

    # -- stages ------------------------------------------------------------------------------

    def stage_started(self, stage: str) -> None:
        """A stage is RUNNING."""
        now = datetime.now(UTC)
        self._writer.call(
            self.store.set_stage, self.run_id, stage, status=Status.RUNNING, started_at=now
        )
        self.emit(Event("stage_started", self.name, stage=stage, at=now))

    def stage_finished(self, stage: str, status: Status, started: bool = True) -> None:
        """A stage ended (``started=False``: it never ran, e.g. CANCELED after a failure)."""
        now = datetime.now(UTC)
        fields: dict[str, Any] = {"status": status}
        if started:
            fields["finished_at"] = now
        self._writer.call(self.store.set_stage, self.run_id, stage, **fields)
        self.emit(Event("stage_finished", self.name, stage=stage, status=status, at=now))

    # -- jobs --------------------------------------------------------------------------------

    def job_started(self, stage: str, job: str) -> None:
        """A job is RUNNING: its log file is opened."""
        now = datetime.now(UTC)
        path = log_path(self.logs_dir, self.pipeline, self.number, job)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)  # what jobs printed
        with self._lock:
            self._files[job] = os.fdopen(fd, "a", encoding="utf-8", buffering=1)
        self._writer.call(
            self.store.set_job,
            self.run_id,
            job,
            status=Status.RUNNING,
            started_at=now,
            log_path=str(path),
            worker=self.worker,
        )
        self.emit(Event("job_started", self.name, stage=stage, job=job, at=now))

    def job_line(self, stage: str, job: str, line: str) -> str:
        """Record one output line of a job; returns the line as shown (secrets masked)."""
        now = datetime.now(UTC)
        shown = self.masker.mask(line)
        handle = self._files.get(job)
        if handle is not None:
            handle.write(f"{stamp(now)} {shown}\n")
        self.emit(Event("line", self.name, stage=stage, job=job, text=shown, at=now))
        return shown

    def job_finished(
        self,
        stage: str,
        job: str,
        status: Status,
        *,
        exit_code: int | None = None,
        error: str | None = None,
        attempts: int = 1,
        started: bool = True,
        allowed: bool = False,
    ) -> None:
        """A job ended (``started=False``: it never ran, e.g. CANCELED before its turn).

        ``allowed``: it FAILED and was allowed to.
        """
        now = datetime.now(UTC)
        with self._lock:
            handle = self._files.pop(job, None)
        if handle is not None:
            if error:
                handle.write(f"{stamp(now)} cicd: {self.masker.mask(error)}\n")
            handle.close()
        fields: dict[str, Any] = {"status": status, "exit_code": exit_code, "attempts": attempts}
        if allowed:
            fields["allowed"] = True
        if error:
            fields["error"] = self.masker.mask(error)
        if started:
            fields["finished_at"] = now
        self._writer.call(self.store.set_job, self.run_id, job, **fields)
        self.emit(
            Event(
                "job_finished",
                self.name,
                stage=stage,
                job=job,
                status=status,
                exit_code=exit_code,
                text=self.masker.mask(error) if error else None,
                at=now,
            )
        )

    def job_tests(
        self, job: str, tests: JobTestsPublic, cases: list[tuple[str, str]] | None = None
    ) -> None:
        """Record what ``job``'s JUnit reports counted, and each test case's outcome
        (``(classname.name, passed|failed|error|skipped)``, for flaky tests)."""
        self._writer.call(self.store.set_job_tests, self.run_id, job, tests)
        if cases:
            self._writer.call(self.store.add_test_cases, self.run_id, job, cases)

    def job_usage(self, job: str, memory_peak_bytes: int | None, cpu_seconds: float | None) -> None:
        """Record what ``job``'s container used (None: not measured)."""
        if memory_peak_bytes is None and cpu_seconds is None:
            return
        self._writer.call(
            self.store.set_job,
            self.run_id,
            job,
            memory_peak_bytes=memory_peak_bytes,
            cpu_seconds=cpu_seconds,
        )

    def flush(self) -> None:
        """Wait until every store write so far is applied."""
        self._writer.flush()

    def close(self) -> None:
        """Close open log files and apply every queued store write."""
        with self._lock:
            files, self._files = self._files, {}
        for handle in files.values():
            handle.close()
        self._writer.close()
