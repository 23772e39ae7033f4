"""A cold start's head start: the first stage's jobs run while the Prefect server boots.

The first ``cicd run`` in a fresh ``CICD_HOME`` starts its local Prefect server, which spends
seconds importing before it answers. The run does not wait for it: once the commit is checked
out, ``HeadStart`` records the run RUNNING, checks its images and starts the first stage's jobs
(those whose needs in the stage have succeeded, at most ``--jobs`` containers at once), exactly
as ``execute_job`` runs them. When Prefect answers, the flow runs as always. A job's task that
finds its job started here adopts it (``Claim``): it hands the job's lines, those printed so
far first, to Prefect's log and ends in the job's state. The head start starts nothing once the
flow's first stage has begun; jobs it did not start are run by their tasks. Each job runs once,
by whoever took it first (``execution.claim_job``). The run's flow, stage subflows and job
tasks are in Prefect as for any run; only their start times are later than the jobs'.

Only jobs that start unconditionally are started here (``when: on_success``, not delayed, not
reused from a retried run): the others' turn depends on outcomes the flow decides on.
"""

from __future__ import annotations

import logging
import threading

from backend.execution import (
    RunContext,
    begin_run,
    begin_stage,
    claim_job,
    prepare_images,
    run_job,
)
from backend.pipeline.model import Job
from backend.schemas import Status

log = logging.getLogger(__name__)

_GOOD = (Status.SUCCESS, Status.REUSED)


class HeadStart:
    """Starts the first stage's jobs of ``ctx`` until its flow begins that stage."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.started: list[str] = []  # jobs started here, in order
        self._changed = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._run, name="cicd-head-start", daemon=True)

    def start(self) -> HeadStart:
        """Begin in the background; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Start no more jobs (the flow takes over)."""
        self.ctx.flow_started.set()
        with self._changed:
            self._changed.notify_all()

    def join(self) -> None:
        """Stop, then wait for the jobs started here to end (each settles itself)."""
        self.stop()
        self._thread.join()
        for thread in list(self._threads):
            thread.join()

    def _over(self) -> bool:
        return self.ctx.flow_started.is_set() or self.ctx.cancel.is_set()

    def _run(self) -> None:
        ctx = self.ctx
        stage = next(iter(ctx.stage_order), None)
        if stage is None:
            return
        try:
            begin_run(ctx)
            prepare_images(ctx)
            if self._over():
                return
            begin_stage(ctx, stage)
            self._start_jobs(ctx.stage_order[stage])
        except Exception:  # the flow does what was not done here, and reports what breaks
            log.exception("%s: head start stopped", ctx.name)

    def _start_jobs(self, jobs: list[Job]) -> None:
        ctx = self.ctx
        pending = [job for job in jobs if _unconditional(ctx, job)]
        while pending and not self._over():
            with ctx._lock:
                statuses = dict(ctx.statuses)
            for job in list(pending):
                upstream = ctx.waits_for(job)
                ended = [statuses[n] for n in upstream if statuses.get(n, Status.RUNNING).finished]
                if len(ended) < len(upstream) and all(s in _GOOD for s in ended):
                    continue  # not yet: its needs are running
                pending.remove(job)
                if len(ended) == len(upstream) and all(s in _GOOD for s in ended):
                    self._launch(job)
                # else a need did not succeed: the flow decides (held, skipped, on_failure)
            with self._changed:
                if pending and not self._over():
                    self._changed.wait(0.5)

    def _launch(self, job: Job) -> None:
        claim = claim_job(self.ctx, job)
        if claim is None:  # its task took it first
            return
        self.started.append(job.name)

        def body() -> None:
            status = Status.FAILED
            try:
                status = run_job(self.ctx, job, claim.line)
            finally:
                claim.finish(status)
                with self._changed:
                    self._changed.notify_all()

        thread = threading.Thread(target=body, name=f"cicd-head-start-{job.name}", daemon=True)
        self._threads.append(thread)
        thread.start()


def _unconditional(ctx: RunContext, job: Job) -> bool:
    return job.when == "on_success" and job.start_in is None and job.name not in ctx.reused
