"""SKIPPED, MANUAL, allowed failures, JUnit reports and native ``fail_fast: false`` through the
Prefect flow with a FakeRunner (issue 10, items 2, 4 and 8).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from flowkit import make_pipeline

from backend.pipeline.model import Artifacts, Pipeline
from backend.runner.base import FakeOutcome, Outcome
from backend.runner.fake import FakeRunner
from backend.schemas import Status

pytestmark = pytest.mark.usefixtures("prefect_api")

JUNIT = b"""<?xml version="1.0" encoding="UTF-8"?>
<testsuites>
  <testsuite name="unit" tests="3">
    <testcase classname="pkg.test_a" name="test_one" time="0.25"/>
    <testcase classname="pkg.test_a" name="test_two" time="0.5">
      <failure message="assert 1 == 2">trace</failure>
    </testcase>
    <testcase classname="pkg.test_b" name="test_three" time="1"><skipped/></testcase>
  </testsuite>
</testsuites>
"""


def _gitlab(name: str, stages: dict[str, list[dict[str, Any]]]) -> Pipeline:
    marked = {
        stage: [{**job, "dag": "needs" in job} for job in jobs] for stage, jobs in stages.items()
    }
    return make_pipeline(name, marked).model_copy(update={"format": "gitlab"})


def _native(name: str, stages: dict[str, list[dict[str, Any]]], fail_fast: bool) -> Pipeline:
    return make_pipeline(name, stages).model_copy(update={"fail_fast": fail_fast})


def _run(ctx: Any) -> Status:
    from flows.pipeline import run_pipeline

    return run_pipeline(ctx)


def _jobs(store: Any, ctx: Any) -> dict[str, tuple[str, str | None]]:
    """Each job's status and error as the store recorded them."""
    run = store.get_run(ctx.pipeline.name, ctx.recorder.number)
    return {job.name: (job.status.value, job.error) for s in run.stages for job in s.jobs}


def _stages(store: Any, ctx: Any) -> dict[str, str]:
    run = store.get_run(ctx.pipeline.name, ctx.recorder.number)
    return {stage.name: stage.status.value for stage in run.stages}


def test_statuses_native_fail_fast_false_lets_sibling_finish_and_skips_the_rest(
    make_context: Any, store: Any
) -> None:
    pipeline = _native(
        "nff",
        {
            "build": [
                {"name": "bad"},
                {"name": "slow"},
                {"name": "after-bad", "needs": ["bad"]},
                {"name": "after-after", "needs": ["after-bad"]},
            ],
            "test": [{"name": "unit"}],
        },
        fail_fast=False,
    )
    runner = FakeRunner(
        {"bad": FakeOutcome(exit_code=3, seconds=0.1), "slow": FakeOutcome(seconds=1.0)}
    )
    ctx, _events = make_context(pipeline, runner)
    assert not ctx.fail_fast_mode
    assert _run(ctx) is Status.FAILED
    assert runner.call("slow").outcome is Outcome.SUCCESS  # not killed by the failure
    assert _jobs(store, ctx) == {
        "bad": ("FAILED", None),
        "slow": ("SUCCESS", None),
        "after-bad": ("SKIPPED", "skipped: bad failed"),
        "after-after": ("SKIPPED", "skipped: after-bad was skipped"),
        "unit": ("SKIPPED", "skipped: bad failed"),
    }
    assert _stages(store, ctx) == {"build": "FAILED", "test": "SKIPPED"}
    assert sorted({call.spec.job for call in runner.calls}) == ["bad", "slow"]


def test_statuses_native_fail_fast_default_still_cancels(make_context: Any, store: Any) -> None:
    pipeline = make_pipeline(
        "ff", {"build": [{"name": "bad"}, {"name": "slow"}], "test": [{"name": "unit"}]}
    )
    runner = FakeRunner(
        {"bad": FakeOutcome(exit_code=3, seconds=0.1), "slow": FakeOutcome(seconds=5.0)}
    )
    ctx, _events = make_context(pipeline, runner)
    assert pipeline.fail_fast and ctx.fail_fast_mode
    assert _run(ctx) is Status.FAILED
    assert runner.call("slow").outcome is Outcome.CANCELED
    assert {name: status for name, (status, _) in _jobs(store, ctx).items()} == {
        "bad": "FAILED",
        "slow": "CANCELED",
        "unit": "CANCELED",
    }
    assert _stages(store, ctx) == {"build": "FAILED", "test": "CANCELED"}


def test_statuses_allowed_failure_recorded_allowed_and_run_succeeds(
    make_context: Any, store: Any
) -> None:
    pipeline = _gitlab(
        "allowed",
        {
            "test": [
                {"name": "flaky", "allow_failure": True},
                {"name": "coded", "allow_failure": True, "allow_failure_exit_codes": [137]},
            ],
        },
    )
    runner = FakeRunner({"flaky": FakeOutcome(exit_code=1), "coded": FakeOutcome(exit_code=2)})
    ctx, _events = make_context(pipeline, runner)
    assert _run(ctx) is Status.FAILED  # coded's exit code 2 is not one of its allowed codes
    run = store.get_run("allowed", 1)
    found = {job.name: job for job in run.stages[0].jobs}
    assert (found["flaky"].status, found["flaky"].allowed, found["flaky"].allow_failure) == (
        Status.FAILED,
        True,
        True,
    )
    assert found["flaky"].error == "allowed to fail"
    assert (found["coded"].status, found["coded"].allowed) == (Status.FAILED, False)


def test_statuses_manual_job_recorded_manual_and_its_stage_skipped(
    make_context: Any, store: Any
) -> None:
    pipeline = _gitlab(
        "manual",
        {
            "build": [
                {"name": "compile"},
                {
                    "name": "extra",
                    "when": "manual",
                    "run": False,
                    "skip_reason": "when: manual (start it with --manual)",
                },
            ],
            "deploy": [
                {
                    "name": "ship",
                    "when": "manual",
                    "run": False,
                    "skip_reason": "when: manual (start it with --manual)",
                },
                {"name": "gone", "run": False, "skip_reason": "rules: rule 1 says never"},
            ],
        },
    )
    runner = FakeRunner()
    ctx, _events = make_context(pipeline, runner)
    assert _run(ctx) is Status.SUCCESS
    assert _jobs(store, ctx) == {  # a job rules leave out is not part of the run at all
        "compile": ("SUCCESS", None),
        "extra": ("MANUAL", None),
        "ship": ("MANUAL", None),
    }
    assert _stages(store, ctx) == {"build": "SUCCESS", "deploy": "SKIPPED"}
    assert [call.spec.job for call in runner.calls] == ["compile"]


def test_statuses_run_of_only_skipped_jobs_is_skipped(make_context: Any, store: Any) -> None:
    pipeline = _gitlab("quiet", {"test": [{"name": "report", "when": "on_failure"}]})
    runner = FakeRunner()
    ctx, _events = make_context(pipeline, runner)
    assert _run(ctx) is Status.SKIPPED
    assert _jobs(store, ctx) == {
        "report": ("SKIPPED", "skipped: when: on_failure and nothing failed before it")
    }
    assert _stages(store, ctx) == {"test": "SKIPPED"}
    assert store.get_run("quiet", 1).status is Status.SKIPPED
    assert runner.calls == []


def test_statuses_junit_report_recorded_for_a_failed_job(
    make_context: Any, store: Any, tmp_path: Path
) -> None:
    reports = Artifacts(reports={"junit": ["reports/*.xml"]})
    pipeline = _gitlab(
        "junit",
        {
            "test": [
                {"name": "unit", "artifacts_options": reports},
                {"name": "plain"},
            ]
        },
    )
    runner = FakeRunner({"unit": FakeOutcome(exit_code=1, lines=["pytest ran"])})
    ctx, events = make_context(pipeline, runner)
    (ctx.workspace / "reports").mkdir()
    (ctx.workspace / "reports" / "unit.xml").write_bytes(JUNIT)
    assert _run(ctx) is Status.FAILED
    job = store.get_job("junit", 1, "unit")
    assert job.tests is not None
    assert job.tests.model_dump() == {
        "total": 3,
        "failed": 1,
        "errors": 0,
        "skipped": 1,
        "time": 1.75,
        "failed_names": ["pkg.test_a.test_two"],
    }
    assert store.get_job("junit", 1, "plain").tests is None
    lines = [e.text for e in events if e.kind == "line" and e.job == "unit"]
    assert "cicd: junit report: 3 tests, 1 failed, 0 errors, 1 skipped" in lines


def test_statuses_junit_report_not_read_for_a_canceled_job(make_context: Any, store: Any) -> None:
    reports = Artifacts(reports={"junit": ["unit.xml"]})
    pipeline = _gitlab("cancel", {"test": [{"name": "unit", "artifacts_options": reports}]})
    runner = FakeRunner({"unit": FakeOutcome(seconds=30)})
    ctx, _events = make_context(pipeline, runner)
    (ctx.workspace / "unit.xml").write_bytes(JUNIT)
    threading.Timer(0.5, ctx.cancel_run).start()
    assert _run(ctx) is Status.CANCELED
    assert store.get_job("cancel", 1, "unit").tests is None
