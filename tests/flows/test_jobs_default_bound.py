"""Without ``--jobs`` a run still bounds the jobs it runs at once (a stage of 1,000 jobs)."""

from __future__ import annotations

from typing import Any

import pytest
from flowkit import make_pipeline

from backend.execution import MAX_DEFAULT_JOBS, default_max_jobs
from backend.runner.base import FakeOutcome
from backend.runner.fake import FakeRunner
from backend.schemas import Status

pytestmark = pytest.mark.usefixtures("prefect_api")


def _peak(runner: FakeRunner) -> int:
    """The most calls that were running at the same moment."""
    points = sorted(
        [(c.started, 1) for c in runner.calls] + [(c.finished, -1) for c in runner.calls]
    )
    running = peak = 0
    for _, delta in points:
        running += delta
        peak = max(peak, running)
    return peak


def test_default_max_jobs_is_four_per_cpu_at_most_32() -> None:
    bound = default_max_jobs()
    assert 4 <= bound <= MAX_DEFAULT_JOBS and bound % 4 == 0


def test_flow_jobs_not_given_runs_at_most_the_default_bound(make_context: Any) -> None:
    from flows.pipeline import run_pipeline

    bound = default_max_jobs()
    count = bound + 8  # more jobs than the bound, all free to start at once
    pipeline = make_pipeline("wide", {"build": [{"name": f"j{i}"} for i in range(count)]})
    runner = FakeRunner({f"j{i}": FakeOutcome(seconds=0.3) for i in range(count)})
    ctx, _ = make_context(pipeline, runner)  # no max_jobs: as `cicd run` without --jobs
    assert run_pipeline(ctx) is Status.SUCCESS
    assert len(runner.calls) == count
    assert _peak(runner) == bound
    assert ctx.max_jobs == bound
