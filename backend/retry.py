"""``cicd retry NAME#N``: which jobs of a finished run run again, and which are carried over.

A retry is a new run of the same pipeline, commit, file and overrides. It re-runs the jobs of
run N that did not succeed (FAILED, CANCELED, SKIPPED: GitLab's "retry failed jobs") or, with
``--job J``, job J; and, in both cases, every job that waits for one of those (its ``needs``,
or a later stage), transitively, so that later jobs see fresh inputs. Every other job is
carried over as REUSED: its status, log and artifacts are run N's, and its artifacts reach the
re-run jobs exactly as if it had just run (``backend.jobspace.reuse_artifacts``).

Both the client (to pick the jobs of the new request) and ``Service.start`` (which decides, on
the server's own store) call ``plan_retry``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from backend.errors import UsageError
from backend.pipeline.model import Pipeline
from backend.schemas import RunPublic, Status

REUSABLE = (Status.SUCCESS, Status.REUSED)


@dataclass(frozen=True)
class RetryPlan:
    """What a retry of a run does, each list in plan order."""

    rerun: list[str]  # jobs that run again
    reuse: list[str]  # jobs carried over from the earlier run (they succeeded there)
    left_out: list[str]  # with --job: jobs that did not succeed and are not run again


def recorded_jobs(run: RunPublic) -> list[str]:
    """The jobs run ``run`` started or settled (not those it left MANUAL), in plan order."""
    return [
        job.name for stage in run.stages for job in stage.jobs if job.status is not Status.MANUAL
    ]


def plan_retry(pipeline: Pipeline, run: RunPublic, job: str | None = None) -> RetryPlan:
    """The retry of ``run`` for ``pipeline`` (the same file, its jobs selected as in ``run``).

    ``UsageError`` when there is nothing to retry (every job succeeded and no ``job`` was
    named), when ``job`` does not run in the pipeline, or when a job to re-run waits for a job
    that did not succeed and is not re-run (``--job`` of a job after a failure).
    """
    from backend.execution import waits_for
    from backend.pipeline.plan import plan_pipeline

    name = f"{run.pipeline}#{run.run}"
    plan = plan_pipeline(pipeline)
    order = {stage.name: list(stage.jobs) for stage in plan.stages}
    planned = [planned for jobs in order.values() for planned in jobs]
    status = {j.name: j.status for stage in run.stages for j in stage.jobs}

    def succeeded(job_name: str) -> bool:
        return status.get(job_name) in REUSABLE

    if job is None:
        rerun = {j.name for j in planned if not succeeded(j.name)}
        if not rerun:
            raise UsageError(
                f"nothing to retry: every job of {name} succeeded (retry one with --job NAME)"
            )
    else:
        if job not in {j.name for j in planned}:
            known = ", ".join(j.name for j in planned)
            raise UsageError(f"--job {job}: no such job runs in {name} (jobs: {known})")
        rerun = {job}
    upstream = {j.name: waits_for(pipeline, order, j) for j in planned}
    for j in planned:  # plan order: what a job waits for comes before it
        if j.name not in rerun and any(u in rerun for u in upstream[j.name]):
            rerun.add(j.name)
    left_out = [j.name for j in planned if j.name not in rerun and not succeeded(j.name)]
    for j in planned:
        blocked = next((u for u in upstream[j.name] if u in left_out), None)
        if j.name in rerun and blocked is not None:
            raise UsageError(
                f"--job {job}: '{j.name}' waits for '{blocked}', which did not succeed in "
                f"{name}: retry without --job to run both again"
            )
    return RetryPlan(
        rerun=[j.name for j in planned if j.name in rerun],
        reuse=[j.name for j in planned if j.name not in rerun and j.name not in left_out],
        left_out=left_out,
    )


def retry_selection(run: RunPublic, job: str | None, plan: RetryPlan | None = None) -> list[str]:
    """The ``--job`` names that give a retry's request its jobs: those ``run`` recorded,
    less what a ``--job`` retry leaves out."""
    dropped: Sequence[str] = plan.left_out if plan is not None and job is not None else ()
    return [name for name in recorded_jobs(run) if name not in dropped]
