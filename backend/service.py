"""Start, execute, cancel and query runs: the one place that decides, for the CLI and the API.

Every launcher takes the same path: the embedded ``cicd run`` (cicd_cli/run.py), the local daemon
and a team server (``POST /runs``, backend/api/launcher.py) and the ``prefect.yaml`` deployment
flow (flows/deployment.py) each turn what they were given into a ``RunRequest`` and a ``Source``,
then call ``start`` (checks the secrets, keys, plans and records the run once, or finds the
identical run still open) and ``execute`` (checks out the commit, runs the flow, cleans up).
A run that cannot end by itself (it broke, was canceled before it started, or its process died)
is settled by ``Store.settle_run`` through ``settle``. ``cancel`` stops a run wherever it runs.

The names of a run (request, ``RunRef``, run id, run key, request key) are mapped in
backend/runs.py. This module imports neither ``flows`` nor ``backend.runner`` at import time:
the CLI imports it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from backend.errors import CicdError, NotFound, UsageError
from backend.pipeline.model import Job, Pipeline
from backend.recording import Event, Recorder, Sink, log_path
from backend.runs import PullPolicy, RunRef
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
from backend.settings import Settings

if TYPE_CHECKING:
    from backend.execution import RunContext
    from backend.headstart import HeadStart
    from backend.pipeline.plan import Plan
    from backend.runner.base import Runner
    from backend.source.workspace import Source
    from backend.store.protocol import HistoryStore
    from backend.store.records import JobRow

log = logging.getLogger(__name__)

PipelineSource = Literal["push", "merge_request_event", "schedule", "api"]


class RunRequest(BaseModel):
    """A request to run a pipeline: what the CLI sends, embedded or to a server."""

    pipeline: Pipeline
    file: str
    file_content: str
    repo: str
    branch: str | None = None
    commit: str
    overrides: list[str] = []
    env: dict[str, str] = {}
    secrets: dict[str, str] = Field(
        default={},
        description="passed to jobs, masked, never stored; names must be shell variable names",
    )
    jobs: int | None = Field(default=None, ge=1)
    pull: PullPolicy = PullPolicy.IF_NOT_PRESENT
    force: bool = False
    keep_failed: bool = Field(
        default=False,
        description="keep a snapshot of every failed job for `cicd debug` (by default only "
        "the last failed job of each pipeline is kept)",
    )
    retry_of: int | None = Field(
        default=None,
        ge=1,
        description="cicd retry: the number of the finished run of this pipeline it retries; "
        "its jobs that succeeded are carried over (REUSED), the others and what waits for them "
        "run again",
    )
    retry_job: str | None = Field(
        default=None,
        max_length=500,
        description="with retry_of: re-run this job and what waits for it (cicd retry --job)",
    )
    source: PipelineSource = Field(
        default="push",
        description="what started the run, as CI_PIPELINE_SOURCE: push (cicd run, a push "
        "webhook), merge_request_event, schedule or api",
    )

    def recorded_stages(self, plan: Plan | None = None) -> list[tuple[str, list[JobRow]]]:
        """What the store records of the run: per stage (file order), the jobs that run in
        start order, then its ``when: manual`` jobs the run does not start, born MANUAL.

        Each job records the jobs it waits for (``needs``): None when it has no ``needs``
        keyword (stage order applies), else the names it needs that run (``[]``: none).
        ``plan`` is the pipeline's plan when the caller made it already.
        """
        from backend.pipeline.plan import plan_pipeline
        from backend.store.records import JobSpec

        def needs(job: Job) -> list[str] | None:
            declared = self.pipeline.job(job.name)  # the plan narrows needs to the job's stage
            return list(declared.needs) if declared.dag or declared.needs else None

        plan = plan or plan_pipeline(self.pipeline)
        running = {stage.name: stage.jobs for stage in plan.stages}
        stages: list[tuple[str, list[JobRow]]] = []
        for stage in plan.layout or plan.stages:
            jobs: list[JobRow] = [
                JobSpec(job.name, job.image, job.allow_failure, needs=needs(job))
                for job in running.get(stage.name, [])
            ]
            jobs += [
                JobSpec(job.name, job.image, job.allow_failure, Status.MANUAL, needs(job))
                for job in stage.jobs
                if not job.run  # not started: the front end's reason, or select_jobs'
                and (job.skip_reason or "").startswith(("when: manual", "manual: "))
            ]
            if jobs:
                stages.append((stage.name, jobs))
        return stages


def request_key(request: RunRequest, source: Source) -> str:
    """The request key of a run: equal for two requests that would run the same thing.

    The redacted repository URL, the commit, the pipeline's name, and the file's text with the
    overrides and the jobs that run (``--job a`` and ``--job b`` are two runs).
    """
    from backend.source.workspace import request_key as fingerprint

    running = [job.name for job in request.pipeline.jobs if job.run]
    retry = f"retry:{request.retry_of}:{request.retry_job or ''}" if request.retry_of else ""
    content = "\0".join(
        [request.file_content, "\n".join(request.overrides), "\n".join(running), retry]
    )
    return fingerprint(source, request.pipeline.name, content)


@dataclass(frozen=True)
class Submission:
    """A started run: its ``RunRef`` and store id, and what executing it needs.

    ``duplicate`` when an identical run was still open (nothing was recorded; it has no
    request to execute). ``stage_order`` is the plan, made once by ``Service.start``.
    """

    run_id: int
    ref: RunRef
    duplicate: bool = False
    request: RunRequest | None = field(default=None, repr=False)
    git_dir: Path | None = None
    stage_order: dict[str, list[Job]] = field(default_factory=dict, repr=False)
    reused: dict[str, int] = field(default_factory=dict)  # cicd retry: job -> source run id

    @property
    def pipeline(self) -> str:
        """The pipeline's name."""
        return self.ref.pipeline

    @property
    def number(self) -> int:
        """The run's number in its pipeline."""
        return self.ref.number

    @property
    def name(self) -> str:
        """``NAME#N``."""
        return self.ref.name


def _defer_run_finished(sink: Sink, held: list[Callable[[], None]]) -> Sink:
    """``sink``, except that ``run_finished`` is kept in ``held`` to be delivered later."""

    def deferring(event: Event) -> None:
        if event.kind != "run_finished":
            sink(event)
            return

        def deliver() -> None:
            with contextlib.suppress(Exception):  # a failing sink never fails the run
                sink(event)

        held.append(deliver)

    return deferring


class Service:
    """Runs and history, over one store, one runner and one settings object."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: HistoryStore | None = None,
        runner: Runner | None = None,
        mode: str = "embedded",
        flow: Callable[[RunContext], Status] | None = None,
    ) -> None:
        """``flow`` runs a prepared run to its end (default: the Prefect flow,
        ``flows.pipeline.run_pipeline``); tests give one without Prefect."""
        self.settings = settings
        self._store = store
        self._runner = runner
        self._flow = flow
        # a run's `worker`: this process; a `cicd worker`'s runs name the worker (its PID, not
        # that of the subprocess Prefect runs each flow run in)
        self.worker = (mode == "worker" and settings.worker_name) or (
            f"{socket.gethostname()}/{mode}-{os.getpid()}"
        )
        self._active: dict[int, RunContext] = {}  # by run id: runs executing in this process
        self._lock = threading.Lock()

    # -- parts, made on first use ------------------------------------------------------------

    @property
    def store(self) -> HistoryStore:
        """The history store."""
        if self._store is None:
            from backend.store import Store

            self.settings.ensure_home()
            self._store = Store(self.settings.store_url)
        return self._store

    @property
    def runner(self) -> Runner:
        """The job runner (Docker unless one was given)."""
        if self._runner is None:
            from backend.runner.docker import DockerRunner

            self._runner = DockerRunner()
        return self._runner

    # -- runs ---------------------------------------------------------------------------------

    def start(self, request: RunRequest, source: Source) -> Submission:
        """Record a new PENDING run of ``request`` at ``source``'s commit, or return the
        identical run still open (unless ``request.force``): keyed and planned here, once.

        ``UsageError`` when a secret cannot reach a job safely: its name is not a shell
        variable name (it would have to go in the container's environment, on disk).
        """
        from backend.pipeline.plan import plan_pipeline
        from backend.runner.base import secret_problem

        for secret, value in request.secrets.items():
            problem = secret_problem(secret, value)
            if problem is not None:
                raise UsageError(problem)
        name = request.pipeline.name
        reused: dict[str, int] = {}
        if request.retry_of is not None:
            reused = self.reused_jobs(request)
            env = {**self.store.run_env(name, request.retry_of), **request.env}
            request = request.model_copy(update={"env": env})
        key = request_key(request, source)
        if not request.force:
            found = self.store.find_active_duplicate(key)
            if found is not None:
                run_id, number = found
                return Submission(run_id, RunRef(name, number), duplicate=True)
        plan = plan_pipeline(request.pipeline)
        run_id, number = self.store.create_run(
            name,
            request.recorded_stages(plan),
            repo=request.repo,
            branch=request.branch,
            commit=request.commit,
            file=request.file,
            request_key=key,
            overrides=request.overrides,
            env=request.env,
            retry_of=request.retry_of,
        )
        self.store.set_run(run_id, worker=self.worker)
        self.cancel_redundant(request, run_id)
        stage_order = {stage.name: list(stage.jobs) for stage in plan.stages}
        return Submission(
            run_id,
            RunRef(name, number),
            request=request,
            git_dir=source.git_dir,
            stage_order=stage_order,
            reused=reused,
        )

    def reused_jobs(self, request: RunRequest) -> dict[str, int]:
        """The jobs a retry (``request.retry_of``) carries over: job -> the store id of the
        run it succeeded in. ``UsageError`` when that run is still open, ran another commit
        or file, or there is nothing to retry (``backend.retry.plan_retry``)."""
        from backend.retry import plan_retry

        assert request.retry_of is not None
        name = f"{request.pipeline.name}#{request.retry_of}"
        run = self.store.get_run(request.pipeline.name, request.retry_of)
        if not run.status.finished:
            raise UsageError(f"cannot retry {name}: it is still {run.status.value}")
        if run.commit != request.commit or (run.file and run.file != request.file):
            raise UsageError(
                f"cannot retry {name}: a retry runs that run's commit and file "
                f"({run.commit[:12]}, {run.file})"
            )
        plan = plan_retry(request.pipeline, run, request.retry_job)
        if plan.left_out:
            raise UsageError(
                f"cannot retry {name}: {', '.join(plan.left_out)} did not succeed there and "
                "would neither run nor be carried over"
            )
        run_id = self.store.run_id(request.pipeline.name, request.retry_of)
        return dict.fromkeys(plan.reuse, run_id)

    def resume(self, run_id: int, ref: RunRef, request: RunRequest, source: Source) -> Submission:
        """The submission of a run another process recorded with ``start`` (a server that
        handed it to this worker), to ``execute`` here; planned again from its request."""
        from backend.pipeline.plan import plan_pipeline

        plan = plan_pipeline(request.pipeline)
        stage_order = {stage.name: list(stage.jobs) for stage in plan.stages}
        reused = self.reused_jobs(request) if request.retry_of is not None else {}
        return Submission(
            run_id,
            ref,
            request=request,
            git_dir=source.git_dir,
            stage_order=stage_order,
            reused=reused,
        )

    def cancel_redundant(self, request: RunRequest, run_id: int) -> list[RunRef]:
        """GitLab's auto-cancel of redundant pipelines, for files that use ``interruptible``.

        When a run of a GitLab file starts on a branch, every older open run of the same
        pipeline on that branch is canceled if each job it has started is ``interruptible``
        (GitLab's default, ``workflow:auto_cancel:on_new_commit: conservative``). The flags
        are read from the new run's file (the old run's file is the same file at an older
        commit). A file with no interruptible job cancels nothing, so two ``cicd run`` of one
        branch side by side both finish. Returns the runs it canceled.
        """
        if request.pipeline.format != "gitlab" or request.branch is None:
            return []
        interruptible = {job.name for job in request.pipeline.jobs if job.interruptible}
        if not interruptible:
            return []
        canceled: list[RunRef] = []
        for other_id, pipeline, number, _ in self.store.open_runs():
            if other_id >= run_id or pipeline != request.pipeline.name:
                continue
            run = self.store.get_run(pipeline, number)
            if run.branch != request.branch:
                continue
            started = [
                job.name for stage in run.stages for job in stage.jobs if job.started_at is not None
            ]
            if all(name in interruptible for name in started):
                self.cancel(pipeline, number)
                canceled.append(RunRef(pipeline, number))
        return canceled

    def execute(self, submission: Submission, sinks: list[Sink] | None = None) -> Status:
        """Check out the commit, run the pipeline's flow to its end, clean up; return its status.

        A run settled before it began (canceled while it waited its turn) is not executed: its
        status is returned. With the default flow the Prefect API must have been configured
        (``backend.engines.prepare_prefect``). Whatever breaks, the run is settled before this
        returns.
        """
        from backend.execution import RunContext
        from backend.masking import Masker
        from backend.source.workspace import Source, checkout, remove_tree

        request, git_dir = submission.request, submission.git_dir
        if request is None or git_dir is None:
            raise ValueError(f"{submission.name} was not started here: nothing to execute")
        recorded = self.store.get_run(submission.pipeline, submission.number)
        if recorded.status.finished:  # canceled while it waited for its turn
            return recorded.status
        flow = self._flow

        held: list[Callable[[], None]] = []  # run_finished, handed on once cleanup is done
        recorder = Recorder(
            self.store,
            submission.run_id,
            submission.pipeline,
            submission.number,
            self.settings.logs_dir,
            masker=Masker(request.secrets.values()),
            sinks=[_defer_run_finished(sink, held) for sink in sinks or ()],
            worker=self.worker,
        )
        key = self.run_key(submission.run_id)
        workspace = self.settings.workspaces_dir / key
        ctx = RunContext(
            key=key,
            pipeline=request.pipeline,
            stage_order=submission.stage_order,
            runner=self.runner,
            recorder=recorder,
            workspace=workspace,
            commit=request.commit,
            branch=request.branch,
            extra_env=dict(request.env),
            secrets=dict(request.secrets),
            max_jobs=request.jobs,
            pull=request.pull,
            artifacts_dir=self.settings.artifacts_dir / str(submission.run_id),
            cache_dir=self.settings.cache_dir,
            store=self.store,
            keep_failed=request.keep_failed,
            reused=dict(submission.reused),
            debug_dir=self.settings.debug_dir,
        )
        with self._lock:
            self._active[submission.run_id] = ctx
        status = Status.FAILED
        head: HeadStart | None = None
        cleaning = threading.Lock()
        cleaned = False

        def clean_up() -> None:
            """Remove the run's containers and workspace, then hand on run_finished; once."""
            nonlocal cleaned
            with cleaning:
                if cleaned:
                    return
                cleaned = True
                try:
                    self.runner.remove_run_containers(key)
                finally:
                    try:
                        remove_tree(workspace)
                        from backend.jobspace import finish_run

                        finish_run(ctx)  # the isolated jobs' folder and the run's bookkeeping
                    finally:
                        for deliver in held:  # a follower that sees the end sees nothing left
                            deliver()

        def ended() -> None:
            """The run's end is recorded (by its flow, or by its head start when every job
            succeeded ahead of the flow): clean up and tell the client now, not after
            the flow's Prefect artifacts and end."""
            try:
                clean_up()
            except Exception as exc:  # the run has ended: this is only logged
                shown = recorder.masker.mask(f"{type(exc).__name__}: {exc}")
                log.warning("%s: cleaning up after its end failed: %s", ctx.name, shown)

        def ended_early() -> None:
            """Every job succeeded ahead of the flow: end the run now (the head start)."""
            from backend.execution import end_run, run_status

            end_run(ctx, run_status(ctx))  # calls ended()

        ctx.on_end = ended
        try:
            workspace.mkdir(parents=True, exist_ok=True)
            source = Source(
                repo=request.repo,
                branch=request.branch,
                commit=request.commit,
                git_dir=git_dir,
                dirty=[],
            )
            checkout(source, workspace)
            if flow is None:  # the Prefect flow
                from backend.engines import wait_for_prefect
                from backend.headstart import HeadStart

                # no job waits for Prefect's flow, subflow and task runs
                head = HeadStart(ctx, on_complete=ended_early).start()
                from flows.pipeline import run_pipeline as flow  # imported meanwhile

                wait_for_prefect()
            status = flow(ctx)
        except BaseException as exc:
            ended = ctx.run_ended
            ctx.cancel_run()  # every container of the run goes, whatever happened
            interrupted = isinstance(exc, KeyboardInterrupt)
            reason = "interrupted" if interrupted else str(exc) or type(exc).__name__
            if ended is not None:  # ended by its head start: only the mirror into Prefect failed
                if interrupted:
                    raise
                shown = recorder.masker.mask(reason)
                log.warning("%s ended, but its Prefect flow run failed: %s", ctx.name, shown)
                return ended
            status = Status.CANCELED if interrupted else Status.FAILED
            self._settle_crashed(recorder, status, reason)
            shown = recorder.masker.mask(reason)
            if isinstance(exc, Exception) and shown != reason:
                # the caller prints or logs it (the daemon's log is a file): never the value
                raise CicdError(shown) from None
            raise
        finally:
            if head is not None:  # its jobs have ended (adopted by the flow, or canceled)
                head.join()
            with self._lock:
                self._active.pop(submission.run_id, None)
            clean_up()
        return status

    def _settle_crashed(self, recorder: Recorder, status: Status, reason: str) -> None:
        # an error's text may quote a secret (an engine's message, a command line)
        reason = recorder.masker.mask(reason)
        try:
            recorder.run_finished(status, error=reason)
        except Exception:  # the writer may already be closed: write directly
            self.store.settle_run(recorder.run_id, status, error=reason)

    def settle(self, submission: Submission, error: str, status: Status = Status.FAILED) -> bool:
        """End a run whose execution broke before it could record its end; False when it had
        ended already. ``error`` must be masked (it is stored and shown as it is)."""
        return self.store.settle_run(submission.run_id, status, error=error, if_open=True)

    def cancel(self, pipeline: str, number: int) -> Status:
        """Cancel a PENDING or RUNNING run; return its status as it stands after the request."""
        run = self.store.get_run(pipeline, number)
        if run.status.finished:
            return run.status
        run_id = self.store.run_id(pipeline, number)
        with self._lock:
            ctx = self._active.get(run_id)
        if ctx is not None:
            ctx.cancel_run()
            return Status.RUNNING
        flow_run_id = next((f for r, _, _, f in self.store.open_runs() if r == run_id), None)
        from backend.leftovers import owner_alive

        if flow_run_id is None or not owner_alive(run.worker):
            # nothing is executing it any more (or it never started): settle it here
            self.store.settle_run(run_id, Status.CANCELED, if_open=True)
            return Status.CANCELED
        from flows.prefect_api import configure_prefect

        configure_prefect(self.settings.home)  # no-op when this process already did
        from flows.pipeline import request_cancel

        request_cancel(flow_run_id)
        return Status.RUNNING

    def run_key(self, run_id: int) -> str:
        """The label of a run's containers and the name of its workspace.

        Derived from the store's run id and this ``CICD_HOME``, so whoever settles a run left
        behind by a killed process can still find its containers and workspace.
        """
        home = hashlib.sha256(str(self.settings.home.resolve()).encode()).hexdigest()[:12]
        return f"{home}-{run_id}"

    def reconcile(self) -> list[str]:
        """Settle runs the store says are open but that nothing executes any more.

        Each is FAILED in the store, its containers and workspace go, and its Prefect flow run
        is marked Crashed (``backend.leftovers``). Called at start-up of the server, the
        daemon, workers and embedded commands; returns the names settled.
        """
        from backend.leftovers import DEAD_OWNER, clean_leftovers, crash_flow_run, owner_alive

        settled = []
        with self._lock:
            active = set(self._active)
        for run_id, pipeline, number, flow_run_id in self.store.open_runs():
            if run_id in active:
                continue
            run = self.store.get_run(pipeline, number)
            if owner_alive(run.worker):
                continue
            if not self.store.settle_run(run_id, Status.FAILED, error=DEAD_OWNER, if_open=True):
                continue  # it ended meanwhile
            key = self.run_key(run_id)
            clean_leftovers(self.runner, self.settings.workspaces_dir / key, key)
            if flow_run_id:
                crash_flow_run(self.settings.home, f"{pipeline}#{number}", flow_run_id)
            settled.append(f"{pipeline}#{number}")
        return settled

    # -- history ------------------------------------------------------------------------------

    def pipelines(self, limit: int | None = None, cursor: str | None = None) -> PipelinesPublic:
        """Pipelines with runs, by name: all, or a page of ``limit`` after ``cursor``."""
        return self.store.list_pipelines(limit, cursor)

    def runs(self, pipeline: str | None, limit: int | None = None, **filters: Any) -> RunsPublic:
        """Runs newest first, of a pipeline or (None) of every one; ``filters`` are
        ``cursor``, ``status``, ``branch`` and ``since`` (``Store.list_runs``)."""
        return self.store.list_runs(pipeline, limit, **filters)

    def run(self, pipeline: str, number: int) -> RunPublic:
        """One run with its stages and jobs."""
        return self.store.get_run(pipeline, number)

    def stage(self, pipeline: str, number: int, stage: str) -> StageRunPublic:
        """One stage of a run."""
        return self.store.get_stage(pipeline, number, stage)

    def job(self, pipeline: str, number: int, job: str) -> JobRunPublic:
        """One job of a run."""
        return self.store.get_job(pipeline, number, job)

    def log_file(self, pipeline: str, number: int, job: str) -> Path:
        """The log file of a job (NotFound when the job never started)."""
        self.store.get_job(pipeline, number, job)
        stored = self.store.job_log_path(pipeline, number, job)
        path = log_path(self.settings.logs_dir, pipeline, number, job)
        if stored and not path.exists():  # another home's (a worker's, on this machine)
            path = Path(stored)
        if not path.exists():
            raise NotFound(f"job '{job}' of {pipeline}#{number} has no log (it never started)")
        return path

    def log(self, pipeline: str, number: int, job: str, follow: bool = False) -> Iterator[str]:
        """The job's log lines; with ``follow``, new lines until the job has finished."""
        return follow_log(self, pipeline, number, job, follow)

    def download_artifact(
        self, pipeline: str, number: int, job: str, path: str, dest: Path
    ) -> None:
        """Copy one artifact to ``dest``."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.artifact_file(pipeline, number, job, path), dest)

    def artifacts(self, pipeline: str, number: int, job: str | None = None) -> list[ArtifactPublic]:
        """The artifacts of a run (or of one of its jobs)."""
        return self.store.list_artifacts(pipeline, number, job)

    def flaky(self, pipeline: str, last: int = 50) -> FlakyTestsPublic:
        """Tests of ``pipeline`` that both passed and failed on one commit, or flipped from
        run to run, over its ``last`` newest runs (``Store.flaky_tests``)."""
        return self.store.flaky_tests(pipeline, last)

    def artifact_file(self, pipeline: str, number: int, job: str, path: str) -> Path:
        """Where an artifact's bytes are kept."""
        return Path(self.store.artifact_file(pipeline, number, job, path))


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
