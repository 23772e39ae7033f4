"""Which jobs of a planned pipeline run: ``--job``, ``--with-needs`` and ``--manual``.

Like gitlab-ci-local's job names: ``--job NAME`` (repeatable) runs only those jobs, the others
are kept in the pipeline with ``run=False`` ("not selected"), so ``dry-run`` shows them.

* A selected job whose need is not selected runs without waiting for it (gitlab-ci-local does
  the same): its need is taken as satisfied. ``--with-needs`` selects what the jobs need
  instead, transitively, through ``needs`` (the implicit "every job of earlier stages" of a
  GitLab job without ``needs:`` is not followed, as gitlab-ci-local does not).
* A ``when: manual`` job runs only when started: named by ``--manual NAME``, named by
  ``--job NAME`` (asking for a job is starting it), or needed by one with ``--with-needs``.
  Otherwise it is not run, and so are the jobs that ``needs`` it (GitLab keeps them waiting
  for it), unless they were named themselves.
* A name that is no job is a usage error with a "did you mean"; the name of a ``parallel``
  job's base (``test`` for ``test 1/3``...) selects all its instances. Naming a job that does
  not run anyway (its rules say ``never``...) is a usage error that says why.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from backend.errors import UsageError
from backend.pipeline.model import Job, Pipeline

NOT_SELECTED = "not selected (--job)"
WAITS = "waits for manual job"


def _is_manual(job: Job) -> bool:
    """A ``when: manual`` job that runs once started (the GitLab front end marks it not run)."""
    return job.when == "manual" and (job.run or (job.skip_reason or "").startswith("when: manual"))


def _startable(job: Job) -> bool:
    return job.run or _is_manual(job)


def manual_reason(name: str) -> str:
    """Why a manual job that was not started does not run."""
    return f"manual: start it with --manual {_quoted(name)}"


def _quoted(name: str) -> str:
    return f"'{name}'" if any(c.isspace() or c in "'\"[]:$" for c in name) else name


def select_jobs(
    pipeline: Pipeline,
    names: Sequence[str] = (),
    *,
    with_needs: bool = False,
    manual: Sequence[str] = (),
) -> Pipeline:
    """``pipeline`` with ``run=False`` (and the reason) on every job the selection leaves out.

    ``names``: ``--job`` (empty: every job); ``manual``: ``--manual``. Raises ``UsageError``
    on a name that is no job, on ``--manual`` of a job that is not manual, and on naming a job
    that does not run whatever is selected.
    """
    jobs = {job.name: job for job in pipeline.jobs}
    chosen = [
        name
        for option, given in (("--job", names), ("--manual", manual))
        for name in _resolve(pipeline, option, given)
    ]
    started = set(_resolve(pipeline, "--manual", manual))
    for name in started:
        if not _is_manual(jobs[name]):
            raise UsageError(
                f"--manual {name}: job '{name}' is not a manual job "
                f"(when: {jobs[name].when}); use --job {_quoted(name)}"
            )
    for name in chosen:
        if not _startable(jobs[name]):
            reason = jobs[name].skip_reason
            raise UsageError(f"job '{name}' does not run in this pipeline: {reason}")
    selected = set(_resolve(pipeline, "--job", names)) | started
    if with_needs:
        pending = list(selected)
        while pending:
            for need in jobs[pending.pop()].needs:
                if need in jobs and need not in selected:
                    selected.add(need)
                    pending.append(need)
    started |= selected  # naming a manual job, or needing it with --with-needs, starts it
    decided: dict[str, tuple[bool, str | None]] = {}
    for job in pipeline.jobs:  # file order: a job's needs are in its stage or earlier ones
        if not _startable(job):
            decided[job.name] = (False, job.skip_reason)
        elif names and job.name not in selected:
            decided[job.name] = (False, NOT_SELECTED)
        elif _is_manual(job) and job.name not in started:
            decided[job.name] = (False, manual_reason(job.name))
        else:
            decided[job.name] = (True, None)
    _hold_for_manual(pipeline, decided, selected)
    stages = [
        stage.model_copy(update={"jobs": [_decide(job, *decided[job.name]) for job in stage.jobs]})
        for stage in pipeline.stages
    ]
    return pipeline.model_copy(update={"stages": stages})


def _hold_for_manual(
    pipeline: Pipeline, decided: dict[str, tuple[bool, str | None]], named: set[str]
) -> None:
    """Jobs that wait for a manual job that was not started do not run either.

    GitLab keeps them waiting: a job that ``needs`` it, and, when it blocks (``allow_failure``
    false, as ``rules: when: manual`` makes it), every job without ``needs:`` of a later stage.
    Jobs named by ``--job`` run anyway.
    """
    jobs = {job.name: job for job in pipeline.jobs}
    stage_index = {stage.name: i for i, stage in enumerate(pipeline.stages)}

    def waiting(name: str) -> str | None:
        """Why a job waiting for ``name`` would not run, or None if ``name`` holds nobody."""
        run, why = decided[name]
        if run:
            return None
        if _is_manual(jobs[name]) and why == manual_reason(name):
            return f"{WAITS} '{name}': start it with --manual {_quoted(name)}"
        return why if (why or "").startswith(WAITS) else None

    changed = True
    while changed:  # needs may point forward in file order within a stage: repeat to a fixpoint
        changed = False
        blocking = [  # manual jobs GitLab does not go past: later stages wait for them
            (stage_index[job.stage], reason)
            for job in pipeline.jobs
            if _is_manual(job) and not job.allow_failure and (reason := waiting(job.name))
        ]
        for job in pipeline.jobs:
            if not decided[job.name][0] or job.name in named:
                continue
            reasons = [r for n in job.needs if n in jobs and (r := waiting(n)) is not None]
            if not job.dag:
                reasons += [r for i, r in blocking if i < stage_index[job.stage]]
            if reasons:
                decided[job.name] = (False, reasons[0])
                changed = True


def _decide(job: Job, run: bool, reason: str | None) -> Job:
    if (job.run, job.skip_reason) == (run, reason):
        return job
    return job.model_copy(update={"run": run, "skip_reason": reason})


def _resolve(pipeline: Pipeline, option: str, given: Sequence[str]) -> list[str]:
    """The job names ``given`` stands for: a name, or a parallel job's base name."""
    names = [job.name for job in pipeline.jobs]
    found: list[str] = []
    for name in given:
        if name in names:
            found.append(name)
            continue
        instances = [
            job.name
            for job in pipeline.jobs
            if job.node_total is not None and job.name.startswith((f"{name} ", f"{name}: "))
        ]
        if not instances:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            where = f"pipeline '{pipeline.name}'"
            raise UsageError(f"{option} {name}: no job '{name}' in {where}{hint}")
        found += instances
    return list(dict.fromkeys(found))


def selection_of(pipeline: Pipeline) -> tuple[list[str], list[str]]:
    """The ``(--job names, --manual names)`` that give ``pipeline``'s run flags again.

    The server reads the committed file itself; it re-applies what the client selected with this.
    """
    names = []
    if any(job.skip_reason == NOT_SELECTED for job in pipeline.jobs):
        names = [job.name for job in pipeline.jobs if job.run]
    manual = [job.name for job in pipeline.jobs if job.run and _is_manual(job)]
    return names, manual
