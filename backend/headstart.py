"""A run's head start: its jobs start without waiting for Prefect.

Before a run's first job starts, Prefect must answer for its flow run, its first stage's subflow
run and the job's task run: ~0.4 s on an idle server, seconds while a cold start's local server
boots (it spends seconds importing before it answers) or while a burst of runs keeps it busy
(20 at once: ~10 s to the first job at the median). Each later stage waits again for its
subflow run and task runs. The run does not wait for them: once the commit is checked out,
``HeadStart`` records the run RUNNING, checks its images and starts the first stage's jobs
(those whose needs in the stage have succeeded, at most ``--jobs`` containers at once), exactly
as ``execute_job`` runs them. When every job of a stage has succeeded, whoever ran it, the
stage is settled (``finish_stage``) and the next one begins the same way, whether or not the
flow has reached it. A job's task that finds its job started here adopts it (``Claim``): it
hands the job's lines, those printed so far first, to Prefect's log and ends in the job's
state; a job whose task took it first is run by its task, and the head start waits for its
end as for its own. Each job runs once, by whoever took it first (``execution.claim_job``).
The run's flow, stage subflows and job tasks are in Prefect as for any run, wired as always;
their start times are later than the jobs' when Prefect is slower than the jobs. When every
job has succeeded, the run is ended at once (``on_complete``: its end recorded, its containers
and workspace gone, the client told) and the flow, as Prefect answers, only mirrors it into
Prefect (README, "How it works").

Only jobs that start unconditionally are started here (``when: on_success``, not delayed, not
reused from a retried run): the others' turn depends on outcomes the flow decides on. A stage
with such a job, or with a job that did not succeed (an allowed failure included), is the last
one the head start touches; the flow decides the rest.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from backend.execution import (
    Claim,
    RunContext,
    begin_run,
    begin_stage,
    claim_job,
    finish_stage,
    prepare_images,
    run_job,
)
from backend.pipeline.model import Job
from backend.schemas import Status

log = logging.getLogger(__name__)

_GOOD = (Status.SUCCESS, Status.REUSED)


class HeadStart:
    """Starts the jobs of ``ctx``, stage after stage, ahead of its flow."""

    def __init__(self, ctx: RunContext, on_complete: Callable[[], None] | None = None) -> None:
        self.ctx = ctx
        self._on_complete = on_complete  # called when every job has succeeded
        self.started: list[str] = []  # jobs started here, in order
        self._stopped = False
        self._threads: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._run, name="cicd-head-start", daemon=True)

    def start(self) -> HeadStart:
        """Begin in the background; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Start no more jobs (the flow has ended, or failed)."""
        with self.ctx.settled:
            self._stopped = True
            self.ctx.settled.notify_all()

    def join(self) -> None:
        """Stop, then wait for the jobs started here to end (each settles itself)."""
        self.stop()
        self._thread.join()
        for thread in list(self._threads):
            thread.join()

    def _over(self) -> bool:
        return self._stopped or self.ctx.cancel.is_set()

    def _run(self) -> None:
        ctx = self.ctx
        if not ctx.stage_order:
            return
        try:
            begin_run(ctx)
            prepare_images(ctx)
            for stage, jobs in ctx.stage_order.items():
                if self._over():
                    return
                begin_stage(ctx, stage)
                if not self._start_jobs(jobs) or not self._all_succeeded(jobs):
                    return  # the flow settles this stage and runs the next ones
                finish_stage(ctx, stage)
            if self._on_complete is not None and not self._over():
                self._on_complete()  # every job succeeded: the run's end is known
        except Exception:  # the flow does what was not done here, and reports what breaks
            log.exception("%s: head start stopped", ctx.name)

    def _all_succeeded(self, jobs: list[Job]) -> bool:
        """Wait until the stage's jobs have ended, whoever ran them; whether each succeeded."""
        ctx = self.ctx
        with ctx.settled:
            while not self._over():
                with ctx._lock:
                    statuses = [ctx.statuses.get(job.name) for job in jobs]
                if any(s is None or not s.finished for s in statuses):
                    ctx.settled.wait(0.5)
                    continue
                return all(s in _GOOD for s in statuses)
        return False

    def _start_jobs(self, jobs: list[Job]) -> bool:
        """Start ``jobs`` as their needs succeed (those their tasks took run there); False
        when one is left to the flow."""
        ctx = self.ctx
        pending = [job for job in jobs if _unconditional(ctx, job)]
        every = len(pending) == len(jobs)
        with ctx.settled:
            while pending and not self._over():
                with ctx._lock:
                    statuses = dict(ctx.statuses)
                for job in list(pending):
                    upstream = ctx.waits_for(job)
                    ended = [s for n in upstream if (s := statuses.get(n)) and s.finished]
                    if len(ended) < len(upstream) and all(s in _GOOD for s in ended):
                        continue  # not yet: its needs are running
                    pending.remove(job)
                    if len(ended) == len(upstream) and all(s in _GOOD for s in ended):
                        self._launch(job)
                    else:  # a need did not succeed: the flow decides (held, skipped, on_failure)
                        every = False
                if pending and not self._over():
                    ctx.settled.wait(0.5)
        return every and not pending

    def _launch(self, job: Job) -> None:
        """Start ``job`` unless its task took it first (then its task runs it)."""
        claim = claim_job(self.ctx, job)
        if claim is not None:
            self.started.append(job.name)
            self._threads.append(_start(self.ctx, job, claim))


class NeedsStarter:
    """Starts GitLab jobs of later stages as soon as every job they ``needs:`` has succeeded.

    GitLab's ``needs:`` lets a job start before its stage: once its needs have ended, whatever
    earlier stages still run (``needs: []``: at once). The flow runs stages in order, a subflow
    each; this starts such a job ahead of its stage, while the flow runs an earlier one, and
    its task adopts it when the flow reaches its stage (``execution.Claim``), as after a head
    start. Only jobs that start unconditionally (``when: on_success``, not delayed, not
    reused) and whose needs all succeeded are started here; a job whose need failed, was
    skipped or was allowed to fail is left to its task (skipped, or run, as GitLab decides).
    """

    def __init__(self, ctx: RunContext, candidates: list[Job]) -> None:
        self.ctx = ctx
        self.started: list[str] = []  # jobs started here, in order
        self._candidates = candidates
        self._stopped = False
        self._threads: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._run, name="cicd-needs", daemon=True)

    @classmethod
    def for_run(cls, ctx: RunContext) -> NeedsStarter | None:
        """A starter for the GitLab jobs of ``ctx`` beyond its first stage that have
        ``needs:``; None when it has none (a native pipeline's needs stay in their stage)."""
        later = list(ctx.stage_order.values())[1:]
        candidates = [job for jobs in later for job in jobs if job.dag and _unconditional(ctx, job)]
        return cls(ctx, candidates) if candidates else None

    def start(self) -> NeedsStarter:
        """Begin in the background; returns self."""
        self._thread.start()
        return self

    def join(self) -> None:
        """Start nothing more and wait for the jobs started here to end (each settles itself)."""
        with self.ctx.settled:
            self._stopped = True
            self.ctx.settled.notify_all()
        self._thread.join()
        for thread in list(self._threads):
            thread.join()

    def _run(self) -> None:
        ctx = self.ctx
        try:
            with ctx.settled:
                while self._candidates and not self._stopped and not ctx.cancel.is_set():
                    self._start_ready()
                    if self._candidates:
                        ctx.settled.wait(0.5)
        except Exception:  # their tasks run what was not started here
            log.exception("%s: starting jobs by their needs stopped", ctx.name)

    def _start_ready(self) -> None:
        ctx = self.ctx
        with ctx._lock:
            statuses = dict(ctx.statuses)
            taken = set(ctx.taken)
        for job in list(self._candidates):
            if job.name in taken:  # its task has it
                self._candidates.remove(job)
                continue
            upstream = [statuses.get(n) for n in ctx.waits_for(job)]
            if any(s is None or not s.finished for s in upstream):
                continue
            self._candidates.remove(job)
            if all(s in _GOOD for s in upstream):
                claim = claim_job(ctx, job)
                if claim is not None:
                    begin_stage(ctx, job.stage)
                    self.started.append(job.name)
                    self._threads.append(_start(ctx, job, claim))


def _start(ctx: RunContext, job: Job, claim: Claim) -> threading.Thread:
    """Run claimed ``job`` in a thread of its own; its claim gets its lines and status."""

    def body() -> None:
        status = Status.FAILED
        try:
            status = run_job(ctx, job, claim.line)
        finally:
            claim.finish(status)  # after run_job settled the job (ctx.settled is notified)

    thread = threading.Thread(target=body, name=f"cicd-early-{job.name}", daemon=True)
    thread.start()
    return thread


def _unconditional(ctx: RunContext, job: Job) -> bool:
    return job.when == "on_success" and job.start_in is None and job.name not in ctx.reused
