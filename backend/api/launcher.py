"""Submitting runs to the server and executing them in background threads.

A submission names a commit that lives on the client's machine. The server finds it in a git
bundle sent along (unpacked under ``CICD_HOME/repos``), or else in ``request.repo`` when that is a
path or URL the server itself can reach. The pipeline file is read back from that commit and
validated again here, so the server runs exactly what is committed, whatever a client sent as
its parsed form; ``Service.start`` then keys, plans and records it, as for every other launcher.

At most ``max_runs`` runs execute at once (CICD_MAX_RUNS), each in its own thread; later ones
wait in a queue, PENDING, with a ``warning`` event that says they are queued, and start in turn
as runs end. Beyond ``max_queue`` waiting runs (CICD_MAX_QUEUE) a submission is refused with
``ServerBusy`` before anything is recorded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from backend.api.repos import BUNDLE_HINT, check_allowed
from backend.errors import RepoError, ServerBusy
from backend.events import EventHub
from backend.masking import Masker
from backend.pool import PoolDispatch
from backend.recording import Event
from backend.schemas import Status
from backend.service import RunRequest, Service, Submission
from backend.settings import Settings
from backend.source.bundles import source_from_bundle
from backend.source.workspace import Source, redact_url, resolve_source

log = logging.getLogger("cicd.server")


@dataclass
class _Entry:
    """A run this launcher queued or executes."""

    submission: Submission
    done: threading.Event = field(default_factory=threading.Event)


class RunLauncher:
    """Submits runs through the ``Service`` and executes up to ``max_runs`` at once, in threads."""

    def __init__(
        self,
        service: Service,
        hub: EventHub,
        settings: Settings,
        *,
        local_paths: bool = False,
        dispatch: PoolDispatch | None = None,
    ) -> None:
        self.service = service
        self.hub = hub
        self.settings = settings
        # team mode (cicd server --pool): runs go to the pool's workers instead of threads here
        self.dispatch = dispatch
        # only the local daemon (the user's own `cicd run`) may name a repository by its path
        self.local_paths = local_paths
        self._entries: dict[str, _Entry] = {}  # queued and executing, by run name
        self._queue: deque[_Entry] = deque()
        self._executing = 0
        self._reserved = 0  # submissions being prepared: they count against the limits
        self._closing = False
        self._lock = threading.Lock()

    @property
    def cache_dir(self) -> Path:
        """Where bundles and clones of submitted repositories are kept."""
        return self.settings.home / "repos"

    def submit(
        self, request: RunRequest, bundle: bytes | Path | None = None, source: Source | None = None
    ) -> Submission:
        """Record the run (or find its running duplicate) and execute it, or queue it.

        ``source`` is where the commit is when the caller found it already (a retry).
        ServerBusy when the queue is full; RepoError when the commit cannot be found;
        PipelineInvalid when the committed file does not validate.
        """
        self._reserve()
        try:
            source = source or self._source(request, bundle)
            request = self._as_committed(request, source.git_dir, source.commit)
            submission = self.service.start(request, source)
        except BaseException:
            with self._lock:
                self._reserved -= 1
            raise
        entry = _Entry(submission)
        if not submission.duplicate:
            self.hub.open(submission.name)
        if self.dispatch is not None and not submission.duplicate:
            return self._hand_to_pool(entry, source)
        with self._lock:
            self._reserved -= 1
            if submission.duplicate:
                return submission
            self._entries[submission.name] = entry
            start = self._executing < self.settings.max_runs
            if start:
                self._executing += 1
            else:
                self._queue.append(entry)
                ahead = len(self._queue) - 1
        if start:
            self._start(entry)
        else:
            text = (
                f"queued: {self.settings.max_runs} runs are executing (CICD_MAX_RUNS) and "
                f"{ahead} wait before this one; it starts when a slot frees"
            )
            self.hub.publish(submission.name, Event("warning", submission.name, text=text))
        return submission

    def retry(
        self,
        pipeline: str,
        number: int,
        *,
        job: str | None = None,
        env: dict[str, str] | None = None,
        secrets: dict[str, str] | None = None,
        jobs: int | None = None,
    ) -> Submission:
        """Retry finished run ``pipeline#number`` (``cicd retry``) from the commit this server
        can reach: a repository URL of its allow-list, a path for the local daemon, or the
        commit a bundle brought before (kept under ``CICD_HOME/repos``). RepoError when it is
        gone (``cicd retry`` from the repository sends it again); UsageError when there is
        nothing to retry."""
        from backend.errors import UsageError
        from backend.requests import prepare_retry

        run = self.service.run(pipeline, number)
        if not run.status.finished:
            raise UsageError(f"cannot retry {pipeline}#{number}: it is still {run.status.value}")
        from backend.source.bundles import bundled_source

        source = bundled_source(run.commit, run.branch, run.repo or "", self.cache_dir)
        if source is None:
            stub = RunRequest.model_construct(repo=run.repo or "", commit=run.commit, branch=None)
            try:
                source = self._source(stub, None)
            except RepoError as exc:
                raise RepoError(
                    f"cannot retry {pipeline}#{number}: {exc} (cicd retry {pipeline}#{number} "
                    "--server URL, run from the repository, sends the commit)"
                ) from None
        prepared = prepare_retry(run, source, job=job, env=env, secrets=secrets, jobs=jobs)
        return self.submit(prepared.request, None, source)

    def _hand_to_pool(self, entry: _Entry, source: Source) -> Submission:
        """Queue the run on the work pool: a worker claims it, PENDING until then."""
        assert self.dispatch is not None
        submission = entry.submission
        with self._lock:
            self._reserved -= 1
            self._entries[submission.name] = entry
            self._executing += 1
        text = f"queued on work pool '{self.dispatch.pool}': it starts when a worker takes it"
        self.hub.publish(submission.name, Event("warning", submission.name, text=text))
        # the answer does not wait for Prefect (a loaded SQLite Prefect server takes seconds)
        threading.Thread(
            target=self._dispatch, args=(submission, source),
            name=f"cicd-dispatch-{submission.name}", daemon=True,
        ).start()
        return submission

    def _dispatch(self, submission: Submission, source: Source) -> None:
        assert self.dispatch is not None
        try:
            self.dispatch.dispatch(submission, source)
            run = self.service.store.get_run(submission.pipeline, submission.number)
            if run.status.finished:  # canceled while it was being queued
                self.dispatch.withdraw(submission.name)
                self.finished(submission.name, run.status)
        except Exception as exc:
            error = f"cannot queue the run on work pool '{self.dispatch.pool}': {exc}"
            log.error("%s: %s", submission.name, error)
            self._settle(submission, error)
            self.finished(submission.name, Status.FAILED, error)

    def ingest(self, name: str, events: list[Event]) -> None:
        """Events a worker sent for run ``name``: shown to followers like this server's own."""
        for event in events:
            if event.kind == "run_finished":
                self.finished(name, event.status or Status.FAILED, event.text)
            else:
                self.hub.publish(name, event)

    def finished(self, name: str, status: Status, error: str | None = None) -> None:
        """A run a worker executed (or the reaper settled) is over."""
        self.hub.close(name, status, error)
        if self.dispatch is not None:
            self.dispatch.forget(name)
        with self._lock:
            entry = self._entries.pop(name, None)
            if entry is not None:
                self._executing -= 1
        if entry is not None:
            entry.done.set()

    def finished_lapsed(self, name: str, error: str) -> None:
        """The reaper settled run ``name``: its worker died."""
        self.finished(name, Status.FAILED, error)

    def _reserve(self) -> None:
        """Count a submission against the limits, or refuse it (ServerBusy)."""
        limit = self.settings.max_runs + self.settings.max_queue
        with self._lock:
            if self._closing:
                raise ServerBusy("the server is shutting down: submit the run again later")
            if self._executing + len(self._queue) + self._reserved >= limit:
                raise ServerBusy(
                    f"the server is busy: {self._executing} runs executing, {len(self._queue)} "
                    f"queued (CICD_MAX_RUNS={self.settings.max_runs}, CICD_MAX_QUEUE="
                    f"{self.settings.max_queue}); submit again when some have ended"
                )
            self._reserved += 1

    def _start(self, entry: _Entry) -> None:
        thread = threading.Thread(
            target=self._execute, args=(entry,), name=f"cicd-run-{entry.submission.name}",
            daemon=True,
        )
        thread.start()

    def running(self) -> list[Submission]:
        """The runs executing or queued in this process."""
        with self._lock:
            return [entry.submission for entry in self._entries.values()]

    def queued(self) -> list[Submission]:
        """The runs waiting for a slot, first to start first."""
        with self._lock:
            return [entry.submission for entry in self._queue]

    def wait(self, name: str, timeout: float | None = None) -> bool:
        """Wait until run ``name`` has finished executing here; False on timeout."""
        with self._lock:
            entry = self._entries.get(name)
        return entry.done.wait(timeout) if entry is not None else True

    def cancel(self, pipeline: str, number: int) -> Status:
        """Cancel a run: a queued one leaves the queue at once, CANCELED; else as Service does."""
        name = f"{pipeline}#{number}"
        if self.dispatch is not None and self.dispatch.withdraw(name):  # no worker took it yet
            status = self.service.cancel(pipeline, number)
            self.finished(name, Status.CANCELED)
            return status
        with self._lock:
            entry = next((e for e in self._queue if e.submission.name == name), None)
            if entry is not None:
                self._queue.remove(entry)
                self._entries.pop(name, None)
        if entry is None:
            return self.service.cancel(pipeline, number)
        try:
            return self.service.cancel(pipeline, number)
        finally:
            self.hub.close(name, Status.CANCELED)
            entry.done.set()

    def shutdown(self, timeout: float = 30.0) -> None:
        """Cancel every run queued or executing here and wait for them to settle."""
        with self._lock:
            self._closing = True  # nothing queued starts any more
        if self.dispatch is not None:  # runs workers took go on there; the others are withdrawn
            for submission in self.running():
                if self.dispatch.withdraw(submission.name):
                    self.service.cancel(submission.pipeline, submission.number)
                    self.finished(submission.name, Status.CANCELED)
            return
        for submission in self.running():  # queued ones leave the queue, the others stop
            try:
                self.cancel(submission.pipeline, submission.number)
            except Exception as exc:
                log.warning("cannot cancel %s at shutdown: %s", submission.name, exc)
        deadline = time.monotonic() + timeout
        for submission in self.running():
            self.wait(submission.name, max(0.0, deadline - time.monotonic()))

    # -- parts -----------------------------------------------------------------------------------

    def _source(self, request: RunRequest, bundle: bytes | Path | None) -> Source:
        """Where the commit is: a bundle sent along; else ``request.repo``, which for a team
        server must be a URL of its allow-list (backend/api/repos.py), and may be a path of
        this machine for the local daemon only. Errors never show where this server keeps
        things (CICD_HOME)."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        hint = ""
        try:
            if bundle:
                return source_from_bundle(
                    bundle, request.commit, request.branch, redact_url(request.repo),
                    self.cache_dir,
                )
            if not self.local_paths:
                check_allowed(request.repo, self.settings.allowed_repos)
            hint = f" (the server cannot see this commit: {BUNDLE_HINT})"
            return resolve_source(
                request.repo, None, request.commit, cwd=self.settings.home,
                cache_dir=self.cache_dir, local_paths=self.local_paths,
            )
        except RepoError as exc:
            reason = str(exc).replace(str(self.settings.home), "CICD_HOME")
            raise RepoError(reason + hint) from None

    def _as_committed(self, request: RunRequest, git_dir: Path, commit: str) -> RunRequest:
        from backend.pipeline import is_gitlab_file, parse_pipeline, select_jobs, selection_of
        from backend.source.gitfiles import read_committed

        if is_gitlab_file(request.file):
            from backend.requests import as_committed_gitlab

            # the same context as the CLI's (git facts and the request's branch and env), and
            # the client's name and job selection, which the committed file cannot tell
            text, pipeline = as_committed_gitlab(
                request.pipeline, request.file, git_dir, commit, request.branch, request.repo,
                request.env, request.source,
            )
        else:
            text = read_committed(git_dir, commit, request.file)
            pipeline = parse_pipeline(text, request.file, overrides=list(request.overrides))
            names, manual = selection_of(request.pipeline)  # --job, made by the client
            pipeline = select_jobs(pipeline, names, manual=manual)
        return request.model_copy(update={
            "pipeline": pipeline,
            "file_content": text,
            "commit": commit,
            # the local daemon is sent a URL with its credentials: the run keeps them hidden
            "repo": redact_url(request.repo),
        })

    def _execute(self, entry: _Entry) -> None:
        submission = entry.submission
        status, error = Status.FAILED, None
        try:  # a run canceled while it waited for its turn is not executed
            status = self.service.execute(submission, sinks=[self.hub.sink_for(submission.name)])
        except BaseException as exc:  # a thread must never die silently: settle and say why
            # a crash message may quote what the run was given: never store or show its secrets
            secrets = submission.request.secrets if submission.request else {}
            masker = Masker(secrets.values())
            error = masker.mask(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            log.error("run %s failed to execute: %s", submission.name, error)
            self._settle(submission, error)
        finally:
            self.hub.close(submission.name, status, error)
            entry.done.set()
            with self._lock:
                self._entries.pop(submission.name, None)
                following = self._queue.popleft() if self._queue and not self._closing else None
                if following is None:
                    self._executing -= 1
            if following is not None:
                self._start(following)

    def _settle(self, submission: Submission, error: str) -> None:
        """A run whose execution broke before the service could record its end."""
        try:
            self.service.settle(submission, error)
        except Exception as exc:
            log.error("cannot settle %s in the history store: %s", submission.name, exc)
