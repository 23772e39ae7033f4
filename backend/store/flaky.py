"""Each test case's outcome per job run, and the flaky tests found in them.

A job's JUnit reports are read after it ends (``backend.reports``); the outcome of each of its
test cases, at most ``MAX_TEST_CASES``, is kept in ``test_cases``. A test (a job and a
``classname.name``) is flaky over a pipeline's last N runs when it both passed and failed
(or errored) on the same commit, or flipped between passing and failing from one run it ran in
to the next. Skipped outcomes count for neither.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import Connection, case, delete, func, insert, select

from backend.errors import NotFound, UsageError
from backend.schemas import FlakyTestPublic, FlakyTestsPublic
from backend.store.queries import job_row
from backend.store.tables import job_runs, pipeline_runs, test_cases

MAX_TEST_CASES = 5000  # per job run
MAX_NAME = 500  # characters of a test case's name (the column's size)
MAX_LAST = 1000  # runs looked at, at most
OUTCOMES = ("passed", "failed", "error", "skipped")
_FAILING = ("failed", "error")


def replace_cases(
    connection: Connection, run_id: int, job: str, cases: list[tuple[str, str]]
) -> int:
    """Keep ``cases`` (``(name, outcome)``) as the test cases of ``job`` in run ``run_id``,
    replacing those recorded before; the first MAX_TEST_CASES; returns how many were kept."""
    job_id = job_row(connection, run_id, job, job_runs.c.id).id
    connection.execute(delete(test_cases).where(test_cases.c.job_run_id == job_id))
    rows = [
        {"job_run_id": job_id, "name": name[:MAX_NAME], "outcome": outcome}
        for name, outcome in cases[:MAX_TEST_CASES]
        if outcome in OUTCOMES
    ]
    if rows:
        connection.execute(insert(test_cases), rows)
    return len(rows)


@dataclass
class _History:
    runs: list[tuple[int, str, str]] = field(default_factory=list)  # (number, commit, outcome)


def flaky_tests(connection: Connection, pipeline: str, last: int) -> FlakyTestsPublic:
    """The flaky tests of ``pipeline`` over its ``last`` newest runs (1 to MAX_LAST)."""
    if not 1 <= last <= MAX_LAST:
        raise UsageError(f"last: must be from 1 to {MAX_LAST}, not {last}")
    recent = (
        select(pipeline_runs.c.id, pipeline_runs.c.number, pipeline_runs.c.commit)
        .where(pipeline_runs.c.pipeline == pipeline)
        .order_by(pipeline_runs.c.number.desc())
        .limit(last)
        .subquery()
    )
    runs = connection.scalar(select(func.count()).select_from(recent)) or 0
    if not runs:
        raise NotFound(f"no runs of pipeline '{pipeline}'")
    outcomes = (
        select(
            recent.c.number,
            recent.c.commit,
            job_runs.c.name.label("job"),
            test_cases.c.name,
            test_cases.c.outcome,
        )
        .join(job_runs, job_runs.c.run_id == recent.c.id)
        .join(test_cases, test_cases.c.job_run_id == job_runs.c.id)
        .where(test_cases.c.outcome != "skipped")
    ).subquery()
    # only tests that both passed and failed can be flaky: the database narrows them first
    passed = func.sum(case((outcomes.c.outcome == "passed", 1), else_=0))
    failing = func.sum(case((outcomes.c.outcome.in_(_FAILING), 1), else_=0))
    candidates = (
        select(outcomes.c.job, outcomes.c.name)
        .group_by(outcomes.c.job, outcomes.c.name)
        .having(passed > 0, failing > 0)
        .subquery()
    )
    rows = connection.execute(
        select(outcomes)
        .join(
            candidates,
            (candidates.c.job == outcomes.c.job) & (candidates.c.name == outcomes.c.name),
        )
        .order_by(outcomes.c.number)
    )
    histories: dict[tuple[str, str], _History] = defaultdict(_History)
    for row in rows:
        histories[(row.job, row.name)].runs.append((row.number, row.commit, row.outcome))
    found = [_flaky(job, name, history) for (job, name), history in histories.items()]
    found.sort(key=lambda t: (not t.same_commit, -t.flips, -t.failed, t.job, t.name))
    return FlakyTestsPublic(pipeline=pipeline, last=last, runs=runs, tests=found)


def _flaky(job: str, name: str, history: _History) -> FlakyTestPublic:
    by_commit: dict[str, set[bool]] = defaultdict(set)
    flips = 0
    before: bool | None = None
    for _number, commit, outcome in history.runs:
        failing = outcome in _FAILING
        by_commit[commit].add(failing)
        if before is not None and failing != before:
            flips += 1
        before = failing
    number, _commit, outcome = history.runs[-1]
    return FlakyTestPublic(
        job=job,
        name=name,
        passed=sum(1 for run in history.runs if run[2] == "passed"),
        failed=sum(1 for run in history.runs if run[2] in _FAILING),
        flips=flips,
        same_commit=[commit for commit, seen in by_commit.items() if len(seen) == 2],
        last_run=number,
        last_outcome=outcome,
    )
