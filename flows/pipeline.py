"""The Prefect flow of a pipeline run: one flow run per run, a subflow per stage, a task per job.

Prefect carries the orchestration (states, ``wait_for``, the UI); every decision is made by
``backend.execution`` on the ``RunContext`` registered under the run's key, so parameters stay
small and JSON-able and nothing here needs Docker to be tested.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import logging
import threading
import time
import uuid
from typing import Any

from prefect import allow_failure, flow, get_run_logger, task
from prefect.futures import PrefectFuture
from prefect.states import Cancelled, Completed, Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from backend.execution import (
    RunContext,
    begin_run,
    begin_stage,
    end_run,
    execute_job,
    finish_stage,
    prepare_images,
    run_status,
    skip_stage,
)
from backend.headstart import NeedsStarter
from backend.schemas import RunPublic, Status

PREFECT_LOG_LINES = 10_000  # per job; the job's own log file keeps every line
FAILED_NAMES_SHOWN = 10  # per job, in the tests table artifact

log = logging.getLogger(__name__)

_contexts: dict[str, RunContext] = {}
_crashes: dict[str, Exception] = {}  # key -> what broke the run's flow, for run_pipeline to raise
_contexts_lock = threading.Lock()


def register(ctx: RunContext) -> None:
    """Make ``ctx`` reachable by the flow's tasks through its key."""
    with _contexts_lock:
        _contexts[ctx.key] = ctx


def unregister(key: str) -> None:
    """Forget a finished run's context."""
    with _contexts_lock:
        _contexts.pop(key, None)
        _crashes.pop(key, None)


def context(key: str) -> RunContext:
    """The registered context of run ``key``."""
    with _contexts_lock:
        return _contexts[key]


# (settings, the same settings without flow heartbeats), most recent last
_quiet_settings: collections.deque[tuple[Any, Any]] = collections.deque(maxlen=8)


def _no_heartbeat() -> Any:
    """A context in which flows send no heartbeats.

    Each sync flow otherwise waits ~1 s at its end for its heartbeat thread (PREFECT_NOTES.md).
    This is ``prefect.settings.temporary_settings(updates=...)`` without its cost: that builds
    and validates a new Settings object each time (~20 ms of CPU, twice per run, on the way to
    the first job); the quiet copy is made once per settings object and reused.
    """
    from prefect.context import SettingsContext, get_settings_context

    context = get_settings_context()
    current = context.settings
    if current.flows.heartbeat_frequency is None:
        return contextlib.nullcontext()
    quiet = next((q for source, q in _quiet_settings if source is current), None)
    if quiet is None:
        quiet = current.copy_with_update(updates={"flows.heartbeat_frequency": None})
        _quiet_settings.append((current, quiet))
    return SettingsContext(profile=context.profile, settings=quiet)


def _crashed(ctx: RunContext, exc: Exception) -> State[Any]:
    """Stop the run after an unexpected error; the flow returns this state instead of raising.

    Raised, the error would end in Prefect's logs as a traceback whose text may hold a secret,
    and the run would look finished to nobody: ``run_pipeline`` raises it to the service
    instead, which settles the run with the message masked.
    """
    with _contexts_lock:
        _crashes.setdefault(ctx.key, exc)
    ctx.cancel.set()  # every job still running stops; nothing else starts
    return Failed(message=ctx.recorder.masker.mask(f"{type(exc).__name__}: {exc}"))


def _state(status: Status, message: str) -> State[Any]:
    if status is Status.SUCCESS:
        return Completed(message=message)
    if status is Status.SKIPPED:  # nothing in it had to run: not a failure
        return Completed(name="Skipped", message=message)
    if status is Status.REUSED:  # cicd retry carried it over from the run it succeeded in
        return Completed(name="Reused", message=message)
    if status is Status.CANCELED:
        return Cancelled(message=message)
    return Failed(message=message)


@task(cache_policy=None, persist_result=False, log_prints=False)  # type: ignore[call-overload]
def job_task(key: str, job: str) -> State[Any]:
    """Run one job in its container; the state says how it ended."""
    ctx = context(key)
    spec = ctx.pipeline.job(job)
    logger = get_run_logger()
    sent = 0

    def to_prefect(line: str) -> None:
        nonlocal sent
        sent += 1
        if sent <= PREFECT_LOG_LINES:
            logger.info(line)
        elif sent == PREFECT_LOG_LINES + 1:
            logger.info("(more output in the job's log: cicd logs %s --job %s)", ctx.name, job)

    status = execute_job(ctx, spec, to_prefect)
    if status is Status.FAILED and job not in ctx.failed:
        return Completed(name="AllowedFailure", message=f"job '{job}' failed (allowed to fail)")
    skipped = ctx.skipped.get(job)
    if skipped is not None:  # GitLab: not run, by design; a Cancelled state would hold its needers
        return Completed(name="Skipped", message=f"job '{job}' {skipped}")
    return _state(status, f"job '{job}' {status.value}")


@flow(name="cicd-stage", persist_result=False, validate_parameters=False)
def stage_flow(key: str, stage: str) -> State[Any]:
    """Run one stage's jobs, each as soon as every job it needs has ended.

    A native job whose need failed never starts (Prefect holds it; the run is stopping anyway).
    A GitLab job's task starts whatever its needs' states: ``execute_job`` decides from their
    outcomes and its ``when:`` (an ``on_failure`` job exists to run after a failure).
    """
    ctx = context(key)
    jobs = ctx.stage_order[stage]
    futures: dict[str, PrefectFuture[Any]] = {}

    def upstream(need: str) -> Any:
        return futures[need] if ctx.fail_fast_mode else allow_failure(futures[need])

    try:
        begin_stage(ctx, stage)
        for job in jobs:  # plan order: every job after its needs, so wait_for futures exist
            futures[job.name] = job_task.with_options(
                name=job.name, tags=[f"stage:{stage}", f"pipeline:{ctx.pipeline.name}"]
            ).submit(key, job.name, wait_for=[upstream(need) for need in job.needs])
        for future in futures.values():
            future.wait()
        status = finish_stage(ctx, stage)
    except Exception as exc:
        crashed = _crashed(ctx, exc)
        for future in futures.values():  # the containers go before the run is settled
            with contextlib.suppress(Exception):
                future.wait()
        return crashed
    except BaseException:  # Ctrl-C / SIGTERM lands here: stop the jobs' containers now
        ctx.cancel_run()
        raise
    return _state(status, f"stage '{stage}' {status.value}")


@flow(name="cicd-pipeline", persist_result=False, validate_parameters=False)
def pipeline_flow(key: str) -> State[Any]:
    """Run a pipeline: its stages in order, each a subflow.

    After a failure a native run skips the later stages (it is canceled); a GitLab run goes on,
    so their ``when: on_failure`` and ``always`` jobs run and the others are skipped. A GitLab
    job with ``needs:`` starts once they succeeded, before its stage (``NeedsStarter``); its
    task adopts it.
    """
    from prefect.runtime import flow_run

    ctx = context(key)
    early = NeedsStarter.for_run(ctx)  # GitLab jobs whose needs: let them start before their stage
    try:
        begin_run(ctx, flow_run_id=str(flow_run.id) if flow_run.id else None)
        _cancel_watch.add(flow_run.id, ctx)
        prepare_images(ctx)
        if early is not None:
            early.start()
        with _no_heartbeat():
            for stage, jobs in ctx.stage_order.items():
                if key in _crashes:
                    break  # the service settles the run and its stages
                if ctx.cancel.is_set() and stage not in ctx.stages_begun:  # (a stage the head
                    skip_stage(ctx, stage)  # start began has jobs to adopt and settle)
                    continue
                # no more threads than jobs may run at once: every job is submitted in plan
                # order, so a waiting task's needs are running, done or ahead in the queue
                width = max(1, min(len(jobs), ctx.max_jobs or len(jobs)))
                stage_flow.with_options(
                    flow_run_name=f"{ctx.name}/{stage}",
                    task_runner=ThreadPoolTaskRunner(max_workers=width),  # type: ignore[arg-type]
                )(key, stage, return_state=True)
        if early is not None:
            early.join()  # its jobs were adopted by their tasks: ended
        crash = _crashes.get(key)
        if crash is not None:
            return _crashed(ctx, crash)
        status = end_run(ctx, run_status(ctx))
    except Exception as exc:
        return _crashed(ctx, exc)
    finally:
        _cancel_watch.remove(flow_run.id)
        if early is not None:
            early.join()
    publish_artifacts(ctx)
    return _state(status, f"pipeline {ctx.name} {status.value}")


def job_needs(ctx: RunContext) -> dict[str, list[str] | None]:
    """Each planned job's ``needs`` as its file has them (the plan narrows a GitLab job's to
    its stage): None when it has no ``needs`` keyword (stage order)."""
    needs: dict[str, list[str] | None] = {}
    for jobs in ctx.stage_order.values():
        for planned in jobs:
            job = ctx.pipeline.job(planned.name)
            needs[job.name] = list(job.needs) if job.dag or job.needs else None
    return needs


def tests_table(run: RunPublic) -> list[dict[str, Any]]:
    """A row per job that left a JUnit report: its counts and first failed tests' names."""
    rows = []
    for stage in run.stages:
        for job in stage.jobs:
            if job.tests is None:
                continue
            names = job.tests.failed_names
            shown = ", ".join(names[:FAILED_NAMES_SHOWN])
            if len(names) > FAILED_NAMES_SHOWN:
                shown += f" (+{len(names) - FAILED_NAMES_SHOWN} more)"
            rows.append(
                {
                    "stage": stage.name,
                    "job": job.name,
                    "tests": job.tests.total,
                    "passed": job.tests.passed,
                    "failed": job.tests.failed,
                    "errors": job.tests.errors,
                    "skipped": job.tests.skipped,
                    "failed tests": shown,
                }
            )
    return rows


def publish_artifacts(ctx: RunContext) -> None:
    """Put the run's Gantt chart and critical path on its flow run as a markdown artifact, and
    its JUnit counts per job as a table artifact when a job left a report.

    Best effort: one API call each; whatever fails is logged and forgotten, never the run's
    outcome. Text goes through the run's masker like every line it shows.
    """
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    from backend.timeline import build_timeline
    from backend.timeline_render import to_markdown

    store = ctx.store if ctx.store is not None else getattr(ctx.recorder, "store", None)
    if store is None:
        return
    mask = ctx.recorder.masker.mask
    try:
        run = store.get_run(ctx.pipeline.name, ctx.recorder.number)
        timeline = build_timeline(run, job_needs(ctx))
        create_markdown_artifact(
            markdown=mask(to_markdown(timeline)),
            description=mask(f"{ctx.name}: jobs on a time axis and the critical path"),
        )
        rows = tests_table(run)
        if rows:
            masked = [{k: mask(v) if isinstance(v, str) else v for k, v in r.items()} for r in rows]
            create_table_artifact(
                table=masked, description=mask(f"{ctx.name}: JUnit test results per job")
            )
    except Exception as exc:  # never the run's failure: the chart is a convenience
        log.warning("%s: no Prefect artifacts: %s", ctx.name, mask(f"{type(exc).__name__}: {exc}"))


class _CancelWatch:
    """Stops runs canceled from the UI or API: one thread per process polls Prefect each second
    for the flow runs of this process's runs that are being canceled, in one call for them all
    (a call per run per second was the largest share of a busy server's Prefect traffic)."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._runs: dict[str, RunContext] = {}  # flow run id -> its run
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, flow_run_id: Any, ctx: RunContext) -> None:
        """Watch ``flow_run_id`` (``ctx``'s flow run) until ``remove``."""
        if flow_run_id is None:
            return
        with self._lock:
            self._runs[str(flow_run_id)] = ctx
            if self._thread is None or not self._thread.is_alive():
                # a plain thread does not inherit contextvars: carry Prefect's settings along
                context = contextvars.copy_context()
                self._thread = threading.Thread(
                    target=context.run, args=(self._loop,), name="cicd-cancel-watch", daemon=True
                )
                self._thread.start()

    def remove(self, flow_run_id: Any) -> None:
        """Stop watching ``flow_run_id``."""
        with self._lock:
            self._runs.pop(str(flow_run_id), None)

    def _loop(self) -> None:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import (
            FlowRunFilter,
            FlowRunFilterId,
            FlowRunFilterState,
            FlowRunFilterStateType,
        )
        from prefect.client.schemas.objects import StateType

        stopping = FlowRunFilterState(
            type=FlowRunFilterStateType(any_=[StateType.CANCELLING, StateType.CANCELLED])
        )
        with get_client(sync_client=True) as client:
            while True:
                time.sleep(self.interval)
                with self._lock:
                    if not self._runs:
                        self._thread = None  # the next add starts another
                        return
                    watched = [uuid.UUID(run) for run in self._runs]
                try:
                    canceled = client.read_flow_runs(
                        flow_run_filter=FlowRunFilter(
                            id=FlowRunFilterId(any_=watched), state=stopping
                        ),
                        limit=len(watched),
                    )
                except Exception:
                    continue
                for found in canceled:
                    with self._lock:
                        ctx = self._runs.pop(str(found.id), None)
                    if ctx is not None:
                        ctx.recorder.warning(f"{ctx.name} canceled from Prefect")
                        ctx.cancel_run()


_cancel_watch = _CancelWatch()


def run_pipeline(ctx: RunContext) -> Status:
    """Run ``ctx``'s pipeline as a Prefect flow run named ``NAME#N`` and wait for its end.

    An unexpected error inside the flow (our bug, a store or engine failure) is raised here
    once the flow run has ended, so the caller settles the run instead of leaving it open.
    """
    register(ctx)
    try:
        with _no_heartbeat():
            pipeline_flow.with_options(
                flow_run_name=ctx.name,
                task_runner=ThreadPoolTaskRunner(max_workers=1),  # type: ignore[arg-type]
            )(ctx.key, return_state=True)
        with _contexts_lock:
            crash = _crashes.get(ctx.key)
        if crash is not None:
            raise crash
    finally:
        unregister(ctx.key)
    return run_status(ctx)


def request_cancel(flow_run_id: str) -> None:
    """Ask the process running ``flow_run_id`` to cancel it, through the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelling

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run_id, Cancelling(), force=True)


_PAGE = 200  # the Prefect server's default page size


def mark_crashed(flow_run_id: str, message: str) -> int:
    """Set a flow run whose process died, and its unfinished subflows and tasks, to Crashed.

    Nothing else would: a process killed with ``kill -9`` leaves its flow run RUNNING in
    Prefect for ever. Finished ones keep their state. Returns how many runs were changed.
    """
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
        FlowRunFilterState,
        FlowRunFilterStateType,
        TaskRunFilter,
        TaskRunFilterFlowRunId,
        TaskRunFilterState,
        TaskRunFilterStateType,
    )
    from prefect.client.schemas.objects import TERMINAL_STATES
    from prefect.states import Crashed

    root = UUID(flow_run_id)
    finished = list(TERMINAL_STATES)
    changed = 0
    with get_client(sync_client=True) as client:
        subflows = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[root]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(not_any_=finished)),
            )
        )
        flow_runs = [root, *(run.id for run in subflows)]
        done: set[UUID] = set()
        while True:  # page by page: a task set to Crashed drops out of the filter
            tasks = client.read_task_runs(
                task_run_filter=TaskRunFilter(
                    flow_run_id=TaskRunFilterFlowRunId(any_=flow_runs),
                    state=TaskRunFilterState(type=TaskRunFilterStateType(not_any_=finished)),
                ),
                limit=_PAGE,
            )
            fresh = [task_run for task_run in tasks if task_run.id not in done]
            for task_run in fresh:
                client.set_task_run_state(task_run.id, Crashed(message=message), force=True)
                done.add(task_run.id)
            changed += len(fresh)
            if len(tasks) < _PAGE or not fresh:
                break
        for run_id in reversed(flow_runs):  # subflows first, the pipeline's flow run last
            state = client.read_flow_run(run_id).state
            if state is None or not state.is_final():
                client.set_flow_run_state(run_id, Crashed(message=message), force=True)
                changed += 1
    return changed
