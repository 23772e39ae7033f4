"""GitLab ``needs:`` across stages through the Prefect flow with a FakeRunner.

A job with ``needs:`` starts once the jobs it needs have succeeded, while earlier stages still
run (``needs: []``: at once), as GitLab and gitlab-ci-local start it; its stage's task adopts
it. Each job runs once, the outcomes are GitLab's, and a need that failed leaves the job to its
task, which skips it.
"""

from __future__ import annotations

from typing import Any

import pytest
from flowkit import gitlab_pipeline as _gitlab
from flowkit import make_pipeline

from backend.runner.base import FakeOutcome
from backend.runner.fake import FakeRunner
from backend.schemas import Status

pytestmark = pytest.mark.usefixtures("prefect_api")


def _run(ctx: Any) -> Status:
    from flows.pipeline import run_pipeline

    return run_pipeline(ctx)


def _outcomes(store: Any, ctx: Any, events: list[Any]) -> dict[str, str]:
    finished = [e.job for e in events if e.kind == "job_finished"]
    assert sorted(finished) == sorted(set(finished))  # each job settled once
    run = store.get_run(ctx.pipeline.name, ctx.recorder.number)
    return {job.name: job.status.value for s in run.stages for job in s.jobs}


def _calls(runner: FakeRunner) -> list[str]:
    return sorted(call.spec.job for call in runner.calls)


def test_gitlab_flow_needs_job_starts_before_earlier_stage_ends(
    make_context: Any, store: Any
) -> None:
    pipeline = _gitlab(
        "early",
        {
            "lint": [{"name": "lint"}],
            "test": [{"name": "slow"}],
            "build": [{"name": "build", "needs": ["lint"]}],
            "deploy": [{"name": "smoke"}],
        },
    )
    runner = FakeRunner({"slow": FakeOutcome(seconds=1.5)})
    ctx, events = make_context(pipeline, runner)

    assert _run(ctx) is Status.SUCCESS
    assert runner.call("build").started >= runner.call("lint").finished  # after its need
    assert runner.call("build").finished < runner.call("slow").finished  # not after the stage
    assert runner.call("smoke").started >= runner.call("slow").finished  # no needs: stage order
    assert _calls(runner) == ["build", "lint", "slow", "smoke"]
    assert _outcomes(store, ctx, events) == dict.fromkeys(
        ["lint", "slow", "build", "smoke"], "SUCCESS"
    )
    run = store.get_run("early", ctx.recorder.number)
    assert [(s.name, s.status) for s in run.stages] == [
        (name, Status.SUCCESS) for name in ("lint", "test", "build", "deploy")
    ]


def test_gitlab_flow_empty_needs_job_starts_with_the_first_stage(
    make_context: Any, store: Any
) -> None:
    pipeline = _gitlab(
        "now",
        {
            "build": [{"name": "compile"}],
            "deploy": [{"name": "docs", "needs": []}],
        },
    )
    runner = FakeRunner({"compile": FakeOutcome(seconds=1.0)})
    ctx, events = make_context(pipeline, runner)

    assert _run(ctx) is Status.SUCCESS
    assert runner.call("docs").finished < runner.call("compile").finished
    assert _outcomes(store, ctx, events) == {"compile": "SUCCESS", "docs": "SUCCESS"}


def test_gitlab_flow_needs_job_of_a_failed_need_is_skipped_not_started(
    make_context: Any, store: Any
) -> None:
    pipeline = _gitlab(
        "failed",
        {
            "lint": [{"name": "lint"}],
            "test": [{"name": "slow"}],
            "build": [{"name": "build", "needs": ["lint"]}],
        },
    )
    runner = FakeRunner({"lint": FakeOutcome(exit_code=1)})
    ctx, events = make_context(pipeline, runner)

    assert _run(ctx) is Status.FAILED
    assert _calls(runner) == ["lint"]
    assert _outcomes(store, ctx, events) == {
        "lint": "FAILED",
        "slow": "SKIPPED",
        "build": "SKIPPED",
    }


def test_gitlab_flow_native_needs_stay_in_their_stage(make_context: Any) -> None:
    from backend.headstart import NeedsStarter

    native = make_pipeline(
        "native", {"build": [{"name": "a"}], "test": [{"name": "b"}, {"name": "c", "needs": ["b"]}]}
    )
    ctx, _ = make_context(native, FakeRunner())
    assert NeedsStarter.for_run(ctx) is None
