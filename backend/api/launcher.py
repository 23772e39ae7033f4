"""Submitting runs to the server and executing them in background threads.

A submission names a commit that lives on the client's machine. The server finds it in a git
bundle sent along (unpacked under ``CICD_HOME/repos``), or else in ``request.repo`` when that is a
path or URL the server itself can reach. The pipeline file is read back from that commit and
validated and planned again here, so the server runs exactly what is committed, whatever a client
sent as its parsed form.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from backend.errors import RepoError
from backend.events import EventHub
from backend.runner.bundles import source_from_bundle
from backend.runner.workspace import Source, request_key, resolve_source
from backend.schemas import Status
from backend.service import RunRequest, Service, Submission
from backend.settings import Settings

log = logging.getLogger("cicd.server")


class RunLauncher:
    """Submits runs through the ``Service`` and executes each one in its own thread."""

    def __init__(self, service: Service, hub: EventHub, settings: Settings) -> None:
        self.service = service
        self.hub = hub
        self.settings = settings
        self._threads: dict[str, tuple[Submission, threading.Thread]] = {}
        self._lock = threading.Lock()

    @property
    def cache_dir(self) -> Path:
        """Where bundles and clones of submitted repositories are kept."""
        return self.settings.home / "repos"

    def submit(self, request: RunRequest, bundle: bytes | None = None) -> Submission:
        """Record the run (or find its running duplicate) and start executing it.

        RepoError when the commit cannot be found; PipelineInvalid when the committed file
        does not validate.
        """
        source = self._source(request, bundle)
        request = self._as_committed(request, source.git_dir, source.commit)
        content = request.file_content + "\0" + "\n".join(request.overrides)
        key = request_key(source, request.pipeline.name, content)
        submission = self.service.submit(request, key)
        if submission.duplicate:
            return submission
        self.hub.open(submission.name)
        thread = threading.Thread(
            target=self._execute, args=(submission, request, source.git_dir),
            name=f"cicd-run-{submission.name}", daemon=True,
        )
        with self._lock:
            self._threads[submission.name] = (submission, thread)
        thread.start()
        return submission

    def running(self) -> list[Submission]:
        """The runs executing in this process."""
        with self._lock:
            return [submission for submission, _ in self._threads.values()]

    def wait(self, name: str, timeout: float | None = None) -> bool:
        """Wait until run ``name`` has finished executing here; False on timeout."""
        with self._lock:
            entry = self._threads.get(name)
        if entry is not None:
            entry[1].join(timeout)
            return not entry[1].is_alive()
        return True

    def shutdown(self, timeout: float = 30.0) -> None:
        """Cancel every run still executing here and wait for them to settle."""
        running = self.running()
        for submission in running:
            try:
                self.service.cancel(submission.pipeline, submission.number)
            except Exception as exc:
                log.warning("cannot cancel %s at shutdown: %s", submission.name, exc)
        deadline = time.monotonic() + timeout
        for submission in running:
            self.wait(submission.name, max(0.0, deadline - time.monotonic()))

    # -- parts -----------------------------------------------------------------------------------

    def _source(self, request: RunRequest, bundle: bytes | None) -> Source:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        if bundle:
            return source_from_bundle(
                bundle, request.commit, request.branch, request.repo, self.cache_dir
            )
        try:
            return resolve_source(
                request.repo, None, request.commit, cwd=self.settings.home, cache_dir=self.cache_dir
            )
        except RepoError as exc:
            raise RepoError(
                f"{exc} (the server cannot see this commit: send a bundle of it, "
                "as cicd run --server does)"
            ) from None

    def _as_committed(self, request: RunRequest, git_dir: Path, commit: str) -> RunRequest:
        from backend.pipeline import parse_pipeline
        from backend.runner.gitfiles import read_committed

        text = read_committed(git_dir, commit, request.file)
        pipeline = parse_pipeline(text, request.file, overrides=list(request.overrides))
        return request.model_copy(update={
            "pipeline": pipeline,
            "file_content": text,
            "commit": commit,
        })

    def _execute(self, submission: Submission, request: RunRequest, git_dir: Path) -> None:
        status, error = Status.FAILED, None
        try:
            status = self.service.execute(
                submission, request, git_dir, sinks=[self.hub.sink_for(submission.name)]
            )
        except BaseException as exc:  # a thread must never die silently: settle and say why
            error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.error("run %s failed to execute: %s", submission.name, error)
            self._settle(submission, error)
        finally:
            self.hub.close(submission.name, status, error)
            with self._lock:
                self._threads.pop(submission.name, None)

    def _settle(self, submission: Submission, error: str) -> None:
        """A run whose execution broke before the service could record its end."""
        try:
            run = self.service.run(submission.pipeline, submission.number)
            if run.status.finished:
                return
            now = datetime.now(UTC)
            store = self.service.store
            store.set_run(submission.run_id, status=Status.FAILED, finished_at=now, error=error)
            store.finish_open(submission.run_id, Status.CANCELED, now)
        except Exception as exc:
            log.error("cannot settle %s in the history store: %s", submission.name, exc)
