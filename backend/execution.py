"""What a run does, without Prefect: the job body, fail-fast and cancel, stage and run outcomes.

``flows/`` wires these into a Prefect flow (stage subflows, job tasks with ``wait_for``); every
decision lives here so it can be tested with a ``FakeRunner`` and no Prefect at all.

Two failure models. A native file fails fast (unless ``pipeline.fail_fast: false``): the first
job that fails without ``allow_failure`` stops every running job, and everything not yet started
is CANCELED. A GitLab file (and a native one with ``fail_fast: false``) does what GitLab does:
running jobs finish, and each job decides when its turn comes from what it waits for (its
``needs:``, or every job of the earlier stages) and its ``when:``; a job that does not run is
SKIPPED, with the reason ("skipped: ...") as its error.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend import caching, jobspace, reports
from backend.pipeline.model import Job, Pipeline
from backend.recording import Recorder
from backend.runner.base import (
    CancelEvent,
    JobResult,
    JobSpec,
    Outcome,
    PullPolicy,
    Runner,
    ServiceSpec,
)
from backend.schemas import Status

# Without --jobs a run starts at most this many containers at once per CPU, and never more than
# MAX_DEFAULT_JOBS: a stage of 1,000 jobs must not start 1,000 containers. CI jobs mostly wait
# (network, disk, sleeps), so more than one per CPU pays; act defaults to one per CPU, GitLab
# runner's `concurrent` to 1, both for whole machines shared by many pipelines.
JOBS_PER_CPU = 4
MAX_DEFAULT_JOBS = 32
# Both runners word a timeout this way (JobResult has no field for why a job failed), which is
# how a failure maps to GitLab's retry reason job_execution_timeout.
TIMEOUT_PREFIX = "timed out"
SKIPPED = "skipped"  # the error text of a GitLab job that did not run starts with it


def default_max_jobs() -> int:
    """Jobs a run executes at once when ``--jobs`` is not given: 4 per usable CPU, at most 32."""
    try:
        cpus = len(os.sched_getaffinity(0))  # the CPUs this process may use (cgroups, taskset)
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(MAX_DEFAULT_JOBS, JOBS_PER_CPU * cpus))


@dataclass
class RunContext:
    """Everything one running pipeline run shares between its stages and jobs."""

    key: str  # unique id of this run, in container labels
    pipeline: Pipeline
    stage_order: dict[str, list[Job]]  # stage name -> jobs in plan (start) order
    runner: Runner
    recorder: Recorder
    workspace: Path
    commit: str
    branch: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)  # --env values
    secrets: dict[str, str] = field(default_factory=dict)  # --secret values: masked, never on disk
    max_jobs: int | None = None  # --jobs; None: default_max_jobs()
    pull: PullPolicy = PullPolicy.IF_NOT_PRESENT
    artifacts_dir: Path | None = None
    cache_dir: Path | None = None  # CICD_HOME/cache: cache: archives (backend.caching)
    store: Any = None
    keep_failed: bool = False  # cicd run --keep-failed: snapshot every failed job (cicd debug)
    # cicd retry: job -> store id of the run whose successful job this run carries over
    reused: dict[str, int] = field(default_factory=dict)
    cancel: threading.Event = field(default_factory=CancelEvent)  # counts: a 2nd stops after_script
    image_errors: dict[str, str | None] = field(default_factory=dict)
    statuses: dict[str, Status] = field(default_factory=dict)
    failed_job: str | None = None  # the first job that failed the run (fail-fast)
    failed: set[str] = field(default_factory=set)  # jobs that failed, not allowed to
    skipped: dict[str, str] = field(default_factory=dict)  # GitLab: job -> why it did not run
    canceled_by_user: bool = False
    # the run's head start (backend.headstart): jobs it started, that their tasks adopt;
    # every job taken by someone (head start or task), so each runs once
    head_started: dict[str, Claim] = field(default_factory=dict)
    taken: set[str] = field(default_factory=set)
    run_begun: bool = False  # run_started recorded (by the head start or the flow)
    stages_begun: set[str] = field(default_factory=set)  # stage_started recorded
    stages_ended: dict[str, Status] = field(default_factory=dict)  # stage_finished recorded
    run_ended: Status | None = None  # run_finished recorded (by the head start or the flow)
    # called once the run's end is recorded (the service removes its containers and workspace
    # and hands on run_finished): what the flow does after, its Prefect artifacts and its own
    # end, is only its mirror, which no client waits for
    on_end: Callable[[], None] | None = None
    settled: threading.Condition = field(default_factory=threading.Condition)  # a job ended
    images_ready: bool = False  # prepare_images done
    _prepare_lock: threading.Lock = field(default_factory=threading.Lock)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _slots: threading.Semaphore | None = None
    debug_dir: Path | None = None  # CICD_HOME/debug: failed jobs kept for cicd debug; None: none

    def __post_init__(self) -> None:
        if self.max_jobs is None:
            self.max_jobs = default_max_jobs()
        if self.max_jobs < 1:  # a semaphore of 0 would wait forever
            raise ValueError(f"max_jobs must be at least 1, not {self.max_jobs}")
        self._slots = threading.BoundedSemaphore(self.max_jobs)

    @property
    def name(self) -> str:
        """``NAME#N``."""
        return self.recorder.name

    @property
    def fail_fast_mode(self) -> bool:
        """True when a failure stops the run: native files unless ``pipeline.fail_fast: false``.

        GitLab files let jobs go on, as GitLab does.
        """
        return self.pipeline.format != "gitlab" and self.pipeline.fail_fast

    def fail_fast(self, job: str) -> None:
        """A job failed without being allowed to: the run fails; native files stop everything."""
        with self._lock:
            self.failed.add(job)
            if self.failed_job is None and not self.canceled_by_user:
                self.failed_job = job
        if self.fail_fast_mode:
            self.cancel.set()

    def waits_for(self, job: Job) -> list[str]:
        """The jobs whose outcome decides whether GitLab job ``job`` runs (``waits_for``)."""
        return waits_for(self.pipeline, self.stage_order, job)

    def skip_reason(self, job: Job) -> str | None:
        """Why GitLab job ``job`` must not run now that all it waits for ended; None: it runs.

        GitLab's rule: what it waits for is *failed* when one of them failed (not allowed to),
        *skipped* when all of them were skipped, else *success*. ``on_success`` runs on success
        (and, for a job without ``needs:``, on skipped too); ``on_failure`` only on failed;
        ``always`` whatever happened.
        """
        upstream = self.waits_for(job)
        with self._lock:
            failed = [name for name in upstream if name in self.failed]
            skipped = [name for name in upstream if name in self.skipped]
        if job.when == "always":
            return None
        if job.when == "on_failure":
            return None if failed else f"{SKIPPED}: when: on_failure and nothing failed before it"
        if failed:
            return f"{SKIPPED}: {failed[0]} failed"
        if job.dag and skipped and len(skipped) == len(upstream):
            return f"{SKIPPED}: {skipped[0]} was skipped"
        if not job.dag:  # a native job starts once each job it needs has succeeded
            need = next((name for name in job.needs if name in skipped), None)
            if need is not None:
                return f"{SKIPPED}: {need} was skipped"
        return None

    def cancel_run(self) -> None:
        """The user asked to cancel the run."""
        with self._lock:
            if self.failed_job is None:
                self.canceled_by_user = True
        self.cancel.set()

    def job_env(self, job: Job) -> dict[str, str]:
        """The container environment of ``job`` (docs/pipeline-format.md, the job's environment)."""
        return {
            **self._predefined(job),
            **self.pipeline.job_env(job),
            **self.extra_env,
            "CI": "true",
            "CICD_PIPELINE": self.pipeline.name,
            "CICD_RUN": self.name,
            "CICD_JOB": job.name,
            "CICD_STAGE": job.stage,
            "CICD_COMMIT": self.commit,
            **({"CICD_BRANCH": self.branch} if self.branch else {}),
        }

    def _predefined(self, job: Job) -> dict[str, str]:
        """GitLab's predefined variables of ``job`` with this run's ids (none for native files).

        ``CI_PIPELINE_ID`` is the store's run id, ``CI_PIPELINE_IID`` the run's number, and
        ``CI_JOB_ID`` unique per server: run id x 100,000 + the job's place in the file.
        """
        if not job.predefined:
            return {}
        place = next(i for i, j in enumerate(self.pipeline.jobs, 1) if j.name == job.name)
        run_id = self.recorder.run_id
        return {
            **job.predefined,
            "CI_PIPELINE_ID": str(run_id),
            "CI_PIPELINE_IID": str(self.recorder.number),
            "CI_JOB_ID": str(run_id * 100_000 + place),
        }


def waits_for(pipeline: Pipeline, stage_order: dict[str, list[Job]], job: Job) -> list[str]:
    """The jobs whose outcome decides whether ``job`` runs, in plan order.

    Its ``needs:`` when it has them (``dag``), else every job that runs in earlier stages
    (GitLab's stage order) and, for a native job, its ``needs`` in its own stage; jobs the
    run leaves out (rules, manual) are not waited for.
    """
    planned = [j.name for jobs in stage_order.values() for j in jobs]
    if job.dag:
        wanted = set(pipeline.job(job.name).needs)  # the plan narrowed it to its stage
        return [name for name in planned if name in wanted]
    earlier: list[str] = []
    for stage, jobs in stage_order.items():
        if stage == job.stage:
            break
        earlier += [j.name for j in jobs]
    own = set(job.needs)  # a native job's needs, in its stage (a GitLab one's are dag)
    return earlier + [j.name for j in stage_order.get(job.stage, []) if j.name in own]


class Claim:
    """A job the head start runs, for its Prefect task to adopt: its lines, then its status.

    Lines wait here until the task takes them (at most ``MAX_BUFFERED``: Prefect keeps no more
    of a job's lines anyway; its log file has them all).
    """

    MAX_BUFFERED = 10_001
    _END = object()

    def __init__(self) -> None:
        self._lines: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._count = 0
        self.status: Status = Status.FAILED

    def line(self, text: str) -> None:
        """The job printed ``text`` (as shown, masked)."""
        self._count += 1
        if self._count <= self.MAX_BUFFERED:
            self._lines.put(text)

    def finish(self, status: Status) -> None:
        """The job ended with ``status``."""
        self.status = status
        self._lines.put(self._END)

    def adopt(self, on_line: Callable[[str], None] | None) -> Status:
        """Wait for the job's end, handing each of its lines to ``on_line``; its status."""
        while True:
            item = self._lines.get()
            if item is self._END:
                return self.status
            if on_line is not None:
                on_line(str(item))


def claim_job(ctx: RunContext, job: Job) -> Claim | None:
    """Take ``job`` for the head start: a Claim its task adopts, or None when it was taken."""
    with ctx._lock:
        if job.name in ctx.taken:
            return None
        ctx.taken.add(job.name)
        claim = ctx.head_started[job.name] = Claim()
    return claim


def begin_run(ctx: RunContext, flow_run_id: str | None = None) -> None:
    """Record the run RUNNING, once; a later call (the flow after a head start) adds its
    flow run id only."""
    with ctx._lock:
        begun, ctx.run_begun = ctx.run_begun, True
    if begun:
        if flow_run_id:
            ctx.recorder.flow_run_attached(flow_run_id)
        return
    ctx.recorder.run_started(flow_run_id=flow_run_id)


def begin_stage(ctx: RunContext, stage: str) -> None:
    """Record ``stage`` RUNNING, once."""
    with ctx._lock:
        if stage in ctx.stages_begun:
            return
        ctx.stages_begun.add(stage)
    ctx.recorder.stage_started(stage)


def prepare_images(ctx: RunContext) -> None:
    """Check or pull every image the run needs (jobs' and services'), once, in parallel.

    Each image follows its ``pull_policy`` (the first job or service naming it decides; a list
    is tried in order until one policy works), else the run's ``--pull``. A second call (the
    flow after a head start) waits for the first and does nothing.
    """
    with ctx._prepare_lock:
        if not ctx.images_ready:
            _prepare_images(ctx)
            ctx.images_ready = True


def _prepare_images(ctx: RunContext) -> None:
    # the planned stages hold only the jobs that run: a job rules leave out pulls nothing
    wanted: dict[str, tuple[PullPolicy, ...]] = {}
    for jobs in ctx.stage_order.values():
        for job in jobs:
            named = [(job.image, job.pull_policy)]
            named += [(service.name, service.pull_policy) for service in job.services]
            for image, names in named:
                wanted.setdefault(image, tuple(PullPolicy(n) for n in names) or (ctx.pull,))
    errors: dict[str, str | None] = {}
    pending, attempt = dict(wanted), 0
    while pending:  # round N tries each image's Nth policy, the images of one policy at once
        by_policy: dict[PullPolicy, list[str]] = {}
        for image, policies in pending.items():
            by_policy.setdefault(policies[attempt], []).append(image)
        for policy, images in by_policy.items():
            errors.update(ctx.runner.ensure_images(images, policy))
        attempt += 1
        pending = {i: p for i, p in pending.items() if errors.get(i) and len(p) > attempt}
    ctx.image_errors = {image: errors.get(image) for image in sorted(wanted)}
    for image, error in ctx.image_errors.items():
        if error:
            ctx.recorder.warning(f"image '{image}': {error}")


def execute_job(ctx: RunContext, job: Job, on_line: Callable[[str], None] | None = None) -> Status:
    """Run one job to its end (with retries) and record it; return its status.

    ``on_line`` receives each line as shown (masked), e.g. for Prefect's logs. A job the head
    start runs already is adopted: its lines go to ``on_line`` and its status is returned.
    """
    with ctx._lock:
        claim = ctx.head_started.get(job.name)
        ctx.taken.add(job.name)
    if claim is not None:
        return claim.adopt(on_line)
    return run_job(ctx, job, on_line)


def run_job(ctx: RunContext, job: Job, on_line: Callable[[str], None] | None = None) -> Status:
    """The body of ``execute_job``: run ``job`` here, whoever else took it."""
    recorder = ctx.recorder
    if ctx.cancel.is_set():
        return _settle(ctx, job, Status.CANCELED, started=False)
    if job.name in ctx.reused:
        return _reuse(ctx, job)
    if not ctx.fail_fast_mode:
        reason = ctx.skip_reason(job)
        if reason is not None:
            with ctx._lock:
                ctx.skipped[job.name] = reason
            return _settle(ctx, job, Status.SKIPPED, error=reason, started=False)
    if ctx._slots is not None:
        ctx._slots.acquire()
    try:
        if ctx.cancel.is_set():
            return _settle(ctx, job, Status.CANCELED, started=False)
        with ctx._lock:
            ctx.statuses[job.name] = Status.RUNNING
        recorder.job_started(job.stage, job.name)

        def line(text: str) -> None:
            shown = recorder.job_line(job.stage, job.name, text)
            if on_line is not None:
                on_line(shown)

        image_error = ctx.image_errors.get(job.image)
        if image_error:
            return _settle(ctx, job, Status.FAILED, error=image_error, fail=True)
        workspace = jobspace.open_workspace(ctx, job, line)  # shared, or the job's own checkout
        try:
            return _run_in(ctx, job, workspace, line)
        finally:
            jobspace.close_workspace(ctx, job, workspace)
    except Exception as exc:  # our own bug must fail the job, not hang the run
        return _settle(ctx, job, Status.FAILED, error=f"internal error: {exc}", fail=True)
    finally:
        if ctx._slots is not None:
            ctx._slots.release()


def _reuse(ctx: RunContext, job: Job) -> Status:
    """Carry ``job`` over from the run it succeeded in (``cicd retry``): REUSED, with that
    run's log and exit code, and its artifacts kept again for this run and handed on to the
    jobs that depend on it, as if it had just run. Nothing is started."""
    try:
        kept = ctx.store.reuse_job(ctx.recorder.run_id, job.name, ctx.reused[job.name])
        shown: list[str] = []
        jobspace.reuse_artifacts(ctx, job, kept, shown.append)
        for text in shown:  # the job has no log of its own in this run: warnings go to the run
            ctx.recorder.warning(f"{job.name}: {text}")
    except Exception as exc:  # a store or file failure fails the job, never hangs the run
        return _settle(ctx, job, Status.FAILED, error=f"cannot reuse: {exc}", fail=True)
    return _settle(ctx, job, Status.REUSED, started=False)


def _run_in(ctx: RunContext, job: Job, workspace: Path, line: Callable[[str], None]) -> Status:
    """Run ``job`` in ``workspace`` (attempts, artifacts, reports, caches) and settle it."""
    from backend import debugging  # a failed job kept for cicd debug

    caching.restore_caches(ctx, job, workspace, line)
    jobspace.restore_artifacts(ctx, job, workspace, line)  # after caches: artifacts win
    spec = JobSpec(
        run_id=ctx.key,
        job=job.name,
        stage=job.stage,
        image=job.image,
        script=[*job.before_script, *job.script],  # one shell, as GitLab runs them
        env={**ctx.job_env(job), **jobspace.dotenv_of_dependencies(ctx, job)},
        workspace=workspace,
        workspace_volume=jobspace.volume_of(ctx, workspace),
        timeout=job.timeout,
        secrets=dict(ctx.secrets),
        after_script=list(job.after_script),
        services=[
            ServiceSpec(s.name, s.alias, s.entrypoint, s.command, dict(s.variables))
            for s in job.services
        ],
        entrypoint=job.image_entrypoint,
        pull_policy=PullPolicy(job.pull_policy[-1]) if job.pull_policy else ctx.pull,
        resources=job.resources,
        snapshot=debugging.target(ctx, job),  # taken only if the job fails
    )
    attempts = 0
    while True:
        attempts += 1
        result = ctx.runner.run_job(spec, line, ctx.cancel)
        if result.outcome is not Outcome.FAILED or attempts > job.retry or ctx.cancel.is_set():
            break
        if not retries_for(job, result):
            line(f"cicd: not retried: {failure_reason(result)} is not in retry:when")
            break
        reason = result.error or f"exit code {result.exit_code}"
        line(f"cicd: attempt {attempts} failed ({reason}); retrying ({attempts}/{job.retry})")
    status = {
        Outcome.SUCCESS: Status.SUCCESS,
        Outcome.CANCELED: Status.CANCELED,
        Outcome.FAILED: Status.FAILED,
    }[result.outcome]
    ctx.recorder.job_usage(job.name, result.memory_peak_bytes, result.cpu_seconds)
    debugging.keep(ctx, spec, result, line)  # the failed job's snapshot: recorded, pruned
    # what the job leaves behind is kept whatever its outcome (each decides by its `when`)
    jobspace.collect_artifacts(ctx, job, workspace, status, line)
    reports.collect_reports(ctx, job, workspace, status, line)
    caching.save_caches(ctx, job, workspace, status, line)
    if status is Status.SUCCESS:
        return _settle(ctx, job, Status.SUCCESS, exit_code=0, attempts=attempts)
    if status is Status.CANCELED:
        return _settle(ctx, job, Status.CANCELED, error="canceled", attempts=attempts)
    return _settle(
        ctx,
        job,
        Status.FAILED,
        exit_code=result.exit_code,
        error=result.error,
        attempts=attempts,
        fail=True,
    )


def _settle(
    ctx: RunContext,
    job: Job,
    status: Status,
    *,
    exit_code: int | None = None,
    error: str | None = None,
    attempts: int = 1,
    started: bool = True,
    fail: bool = False,
) -> Status:
    with ctx._lock:
        ctx.statuses[job.name] = status
    allowed = fail and failure_allowed(job, exit_code)
    if fail and not allowed:
        ctx.fail_fast(job.name)
    if allowed:
        error = f"{error} (allowed to fail)" if error else "allowed to fail"
    ctx.recorder.job_finished(
        job.stage,
        job.name,
        status,
        exit_code=exit_code,
        error=error,
        attempts=attempts if started else 0,
        started=started,
        allowed=allowed,
    )
    with ctx.settled:  # jobs started ahead of their stage wait for their needs (headstart.py)
        ctx.settled.notify_all()
    return status


def failure_allowed(job: Job, exit_code: int | None) -> bool:
    """Whether ``job`` failing with ``exit_code`` (None: it did not exit) leaves the run alone.

    ``allow_failure: {exit_codes: [...]}`` allows only those codes: any other exit, a timeout
    or a container that could not run fails the pipeline, as in GitLab.
    """
    if job.allow_failure_exit_codes:
        return exit_code in job.allow_failure_exit_codes
    return job.allow_failure


def failure_reason(result: JobResult) -> str:
    """GitLab's retry reason for a failed attempt, from what we can tell apart.

    A non-zero exit is ``script_failure``, a timeout ``job_execution_timeout``; a container
    or engine error (no exit code) is ``runner_system_failure``.
    """
    if result.exit_code is not None:
        return "script_failure"
    if (result.error or "").startswith(TIMEOUT_PREFIX):
        return "job_execution_timeout"
    return "runner_system_failure"


# retry:when reasons each failure reason matches besides itself and "always"
_REASON_ALIASES = {
    "job_execution_timeout": {"stuck_or_timeout_failure"},
    "runner_system_failure": {"unknown_failure"},
}


def retries_for(job: Job, result: JobResult) -> bool:
    """Whether failed attempt ``result`` may be retried under ``job``'s ``retry:when``.

    An empty list is GitLab's default, ``always``.
    """
    if not job.retry_when:
        return True
    reason = failure_reason(result)
    matching = {"always", reason, *_REASON_ALIASES.get(reason, ())}
    return any(when in matching for when in job.retry_when)


def stage_status(ctx: RunContext, stage: str) -> Status:
    """Settle a stage whose job tasks have all returned: jobs that never ran are CANCELED.

    FAILED when one of its jobs failed without being allowed to; else CANCELED when one was
    canceled (FAILED if the run failed); else SKIPPED when every job was skipped; else SUCCESS
    (skipped jobs and allowed failures do not count, as on GitLab).
    """
    for job in ctx.stage_order[stage]:
        if ctx.statuses.get(job.name) in (None, Status.PENDING):
            _settle(ctx, job, Status.CANCELED, started=False)
    jobs = ctx.stage_order[stage]
    if any(j.name in ctx.failed for j in jobs):
        return Status.FAILED
    statuses = [ctx.statuses[j.name] for j in jobs]
    if Status.CANCELED in statuses:
        return Status.FAILED if ctx.failed_job else Status.CANCELED
    if statuses and all(status is Status.SKIPPED for status in statuses):
        return Status.SKIPPED
    return Status.SUCCESS


def finish_stage(ctx: RunContext, stage: str) -> Status:
    """Settle ``stage`` (``stage_status``) and record it, once; its status.

    The head start settles a stage whose jobs all succeeded before the flow reaches it; the
    flow's stage then returns the same status without recording it again.
    """
    with ctx._lock:
        ended = ctx.stages_ended.get(stage)
    if ended is not None:
        return ended
    status = stage_status(ctx, stage)
    with ctx._lock:
        if stage in ctx.stages_ended:
            return ctx.stages_ended[stage]
        ctx.stages_ended[stage] = status
    ctx.recorder.stage_finished(stage, status)
    return status


def skip_stage(ctx: RunContext, stage: str) -> None:
    """A stage after a failure or cancel: it and its jobs are CANCELED without running."""
    for job in ctx.stage_order[stage]:
        _settle(ctx, job, Status.CANCELED, started=False)
    ctx.recorder.stage_finished(stage, Status.CANCELED, started=False)


def end_run(ctx: RunContext, status: Status) -> Status:
    """Record the run's end with ``status``, once; the status recorded.

    A head start that saw every job succeed ahead of the flow ends the run; its flow, which
    then only mirrors the run into Prefect, keeps that end. ``ctx.on_end`` follows the record.
    """
    with ctx._lock:
        if ctx.run_ended is not None:
            return ctx.run_ended
        ctx.run_ended = status
    ctx.recorder.run_finished(status)
    if ctx.on_end is not None:
        ctx.on_end()
    return status


def run_status(ctx: RunContext) -> Status:
    """The pipeline's final status from what happened.

    FAILED after a failure that was not allowed, CANCELED when the user canceled it, SKIPPED
    when no job ran (every one was skipped, as GitLab says of such a pipeline), else SUCCESS.
    """
    if ctx.failed_job is not None:
        return Status.FAILED
    if ctx.canceled_by_user:
        return Status.CANCELED
    planned = [job.name for jobs in ctx.stage_order.values() for job in jobs]
    with ctx._lock:
        statuses = [ctx.statuses.get(name) for name in planned]
    if statuses and all(status is Status.SKIPPED for status in statuses):
        return Status.SKIPPED
    return Status.SUCCESS
