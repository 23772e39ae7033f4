"""GitLab failure semantics through the Prefect flow with a FakeRunner (issue 10, item 4).

No fail-fast: running jobs finish after a failure; jobs that wait for a failed job are skipped
(recorded SKIPPED, error "skipped: ..."), unless ``when: on_failure`` or ``always``;
``allow_failure: exit_codes`` and ``retry: when`` narrow what is allowed and what is retried.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from flowkit import gitlab_pipeline as _gitlab

from backend.execution import failure_allowed, failure_reason, retries_for
from backend.pipeline.model import Job
from backend.runner.base import FakeOutcome, JobResult, Outcome
from backend.runner.fake import FakeRunner
from backend.schemas import Status

pytestmark = pytest.mark.usefixtures("prefect_api")


def _run(ctx: Any) -> Status:
    from flows.pipeline import run_pipeline

    return run_pipeline(ctx)


def _jobs(store: Any, ctx: Any, events: list[Any]) -> dict[str, tuple[str, str | None]]:
    """Each job's status as the store recorded it, and the error it finished with."""
    run = store.get_run(ctx.pipeline.name, ctx.recorder.number)
    errors = {e.job: e.text for e in events if e.kind == "job_finished"}
    assert len(errors) == len([e for e in events if e.kind == "job_finished"])  # each once
    return {job.name: (job.status.value, errors[job.name]) for s in run.stages for job in s.jobs}


def _stages(store: Any, ctx: Any) -> list[str]:
    run = store.get_run(ctx.pipeline.name, ctx.recorder.number)
    return [stage.status.value for stage in run.stages]


def _ran(runner: FakeRunner) -> list[str]:
    return sorted({call.spec.job for call in runner.calls})


def test_gitlab_flow_failure_lets_running_sibling_finish_and_skips_later_stage(
    make_context: Any, store: Any
) -> None:
    pipeline = _gitlab(
        "nff",
        {"build": [{"name": "slow"}, {"name": "bad"}], "test": [{"name": "t"}]},
    )
    runner = FakeRunner(
        {"slow": FakeOutcome(seconds=1.0), "bad": FakeOutcome(exit_code=3, seconds=0.1)}
    )
    ctx, events = make_context(pipeline, runner)
    assert _run(ctx) is Status.FAILED
    assert runner.call("slow").outcome is Outcome.SUCCESS  # not killed by its sibling's failure
    assert runner.call("bad").finished < runner.call("slow").finished
    assert _jobs(store, ctx, events) == {
        "slow": ("SUCCESS", None),
        "bad": ("FAILED", None),
        "t": ("SKIPPED", "skipped: bad failed"),
    }
    assert _stages(store, ctx) == ["FAILED", "SKIPPED"]
    assert store.get_run("nff", 1).status is Status.FAILED
    assert _ran(runner) == ["bad", "slow"]


def test_gitlab_flow_dependent_of_failed_need_is_skipped_and_others_run(
    make_context: Any, store: Any
) -> None:
    pipeline = _gitlab(
        "dag",
        {
            "build": [{"name": "bad"}, {"name": "good"}],
            "test": [
                {"name": "after-bad", "needs": ["bad"]},
                {"name": "after-good", "needs": ["good"]},
                {"name": "chained", "needs": ["after-bad"]},
            ],
        },
    )
    runner = FakeRunner({"bad": FakeOutcome(exit_code=1)})
    ctx, events = make_context(pipeline, runner)
    assert _run(ctx) is Status.FAILED
    assert _jobs(store, ctx, events) == {
        "bad": ("FAILED", None),
        "good": ("SUCCESS", None),
        "after-bad": ("SKIPPED", "skipped: bad failed"),
        "after-good": ("SUCCESS", None),
        "chained": ("SKIPPED", "skipped: after-bad was skipped"),
    }
    assert _stages(store, ctx) == ["FAILED", "SUCCESS"]
    assert _ran(runner) == ["after-good", "bad", "good"]


def test_gitlab_flow_on_failure_and_always_jobs_run_after_a_failure(
    make_context: Any, store: Any
) -> None:
    pipeline = _gitlab(
        "onf",
        {
            "build": [{"name": "bad"}],
            "test": [{"name": "unit"}, {"name": "report", "when": "on_failure"}],
            "deploy": [{"name": "ship"}, {"name": "cleanup", "when": "always"}],
        },
    )
    runner = FakeRunner({"bad": FakeOutcome(exit_code=2)})
    ctx, events = make_context(pipeline, runner)
    assert _run(ctx) is Status.FAILED
    assert _jobs(store, ctx, events) == {
        "bad": ("FAILED", None),
        "unit": ("SKIPPED", "skipped: bad failed"),
        "report": ("SUCCESS", None),
        "ship": ("SKIPPED", "skipped: bad failed"),
        "cleanup": ("SUCCESS", None),
    }
    assert _stages(store, ctx) == ["FAILED", "SUCCESS", "SUCCESS"]
    assert _ran(runner) == ["bad", "cleanup", "report"]


def test_gitlab_flow_on_failure_job_is_skipped_when_nothing_failed(
    make_context: Any, store: Any
) -> None:
    pipeline = _gitlab(
        "quiet",
        {
            "build": [{"name": "ok"}],
            "test": [{"name": "report", "when": "on_failure"}, {"name": "unit"}],
            "deploy": [
                {"name": "after-report", "needs": ["report"]},
                {"name": "cleanup", "when": "always"},
            ],
        },
    )
    runner = FakeRunner()
    ctx, events = make_context(pipeline, runner)
    assert _run(ctx) is Status.SUCCESS
    assert _jobs(store, ctx, events) == {
        "ok": ("SUCCESS", None),
        "report": ("SKIPPED", "skipped: when: on_failure and nothing failed before it"),
        "unit": ("SUCCESS", None),
        "after-report": ("SKIPPED", "skipped: report was skipped"),
        "cleanup": ("SUCCESS", None),
    }
    assert _stages(store, ctx) == ["SUCCESS", "SUCCESS", "SUCCESS"]
    assert store.get_run("quiet", 1).status is Status.SUCCESS


def test_gitlab_flow_on_failure_job_needing_a_failed_job_of_its_stage_runs(
    make_context: Any, store: Any
) -> None:
    # its need failed in the same stage: Prefect must still start its task
    pipeline = _gitlab(
        "same",
        {
            "test": [
                {"name": "bad"},
                {"name": "triage", "needs": ["bad"], "when": "on_failure"},
                {"name": "next", "needs": ["bad"]},
            ]
        },
    )
    runner = FakeRunner({"bad": FakeOutcome(exit_code=1)})
    ctx, events = make_context(pipeline, runner)
    assert _run(ctx) is Status.FAILED
    assert _jobs(store, ctx, events) == {
        "bad": ("FAILED", None),
        "triage": ("SUCCESS", None),
        "next": ("SKIPPED", "skipped: bad failed"),
    }
    assert runner.call("bad").finished <= runner.call("triage").started


def test_gitlab_flow_allowed_failure_lets_later_stages_run(make_context: Any, store: Any) -> None:
    pipeline = _gitlab(
        "allowed",
        {
            "test": [{"name": "lint", "allow_failure": True}],
            "deploy": [{"name": "ship"}, {"name": "report", "when": "on_failure"}],
        },
    )
    ctx, events = make_context(pipeline, FakeRunner({"lint": FakeOutcome(exit_code=1)}))
    assert _run(ctx) is Status.SUCCESS
    assert _jobs(store, ctx, events) == {
        "lint": ("FAILED", "allowed to fail"),
        "ship": ("SUCCESS", None),
        "report": ("SKIPPED", "skipped: when: on_failure and nothing failed before it"),
    }
    assert _stages(store, ctx) == ["SUCCESS", "SUCCESS"]


def test_gitlab_flow_allow_failure_exit_codes_allow_a_listed_code(
    make_context: Any, store: Any
) -> None:
    pipeline = _gitlab(
        "codes",
        {
            "test": [{"name": "flaky", "allow_failure": True, "allow_failure_exit_codes": [137]}],
            "deploy": [{"name": "ship"}],
        },
    )
    ctx, events = make_context(pipeline, FakeRunner({"flaky": FakeOutcome(exit_code=137)}))
    assert _run(ctx) is Status.SUCCESS
    assert _jobs(store, ctx, events) == {
        "flaky": ("FAILED", "allowed to fail"),
        "ship": ("SUCCESS", None),
    }


def test_gitlab_flow_allow_failure_exit_codes_fail_the_pipeline_on_another_code(
    make_context: Any, store: Any
) -> None:
    pipeline = _gitlab(
        "codes2",
        {
            "test": [{"name": "flaky", "allow_failure": True, "allow_failure_exit_codes": [137]}],
            "deploy": [{"name": "ship"}],
        },
    )
    ctx, events = make_context(pipeline, FakeRunner({"flaky": FakeOutcome(exit_code=1)}))
    assert _run(ctx) is Status.FAILED
    assert _jobs(store, ctx, events) == {
        "flaky": ("FAILED", None),
        "ship": ("SKIPPED", "skipped: flaky failed"),
    }
    assert _stages(store, ctx) == ["FAILED", "SKIPPED"]


def test_gitlab_flow_retry_when_script_failure_retries_a_non_zero_exit(
    make_context: Any, store: Any
) -> None:
    pipeline = _gitlab(
        "rs", {"build": [{"name": "flaky", "retry": 2, "retry_when": ["script_failure"]}]}
    )
    runner = FakeRunner(
        {"flaky": [FakeOutcome(exit_code=1), FakeOutcome(exit_code=1), FakeOutcome()]}
    )
    ctx, events = make_context(pipeline, runner)
    assert _run(ctx) is Status.SUCCESS
    assert [c.spec.job for c in runner.calls] == ["flaky", "flaky", "flaky"]
    retries = [e.text for e in events if e.kind == "line" and "retrying" in (e.text or "")]
    assert retries == [
        "cicd: attempt 1 failed (exit code 1); retrying (1/2)",
        "cicd: attempt 2 failed (exit code 1); retrying (2/2)",
    ]


def test_gitlab_flow_retry_when_script_failure_does_not_retry_a_timeout(
    make_context: Any, store: Any
) -> None:
    job = {"name": "sleepy", "timeout": 0.2, "retry": 2, "retry_when": ["script_failure"]}
    pipeline = _gitlab("rt", {"build": [job]})
    runner = FakeRunner({"sleepy": FakeOutcome(seconds=30)})
    ctx, events = make_context(pipeline, runner)
    assert _run(ctx) is Status.FAILED
    assert len(runner.calls) == 1
    lines = [e.text for e in events if e.kind == "line"]
    assert "cicd: not retried: job_execution_timeout is not in retry:when" in lines
    assert _jobs(store, ctx, events) == {"sleepy": ("FAILED", "timed out after 0.2s")}


def test_gitlab_flow_retry_when_timeout_retries_a_timeout(make_context: Any) -> None:
    job = {"name": "sleepy", "timeout": 0.2, "retry": 1, "retry_when": ["job_execution_timeout"]}
    pipeline = _gitlab("rt2", {"build": [job]})
    runner = FakeRunner({"sleepy": [FakeOutcome(seconds=30), FakeOutcome()]})
    ctx, _ = make_context(pipeline, runner)
    assert _run(ctx) is Status.SUCCESS
    assert len(runner.calls) == 2


def test_gitlab_flow_cancel_still_cancels_everything(make_context: Any, store: Any) -> None:
    pipeline = _gitlab(
        "cx",
        {"build": [{"name": "long"}], "test": [{"name": "cleanup", "when": "always"}]},
    )
    runner = FakeRunner({"long": FakeOutcome(seconds=30)})
    ctx, events = make_context(pipeline, runner)

    def cancel_once_long_runs() -> None:  # not on a timer: a loaded machine starts it late
        deadline = time.monotonic() + 20
        while not runner.calls and time.monotonic() < deadline:
            time.sleep(0.05)
        ctx.cancel_run()

    threading.Thread(target=cancel_once_long_runs, daemon=True).start()
    assert _run(ctx) is Status.CANCELED
    assert _jobs(store, ctx, events) == {
        "long": ("CANCELED", "canceled"),
        "cleanup": ("CANCELED", None),
    }
    assert _stages(store, ctx) == ["CANCELED", "CANCELED"]


def _result(exit_code: int | None, error: str | None = None) -> JobResult:
    now = datetime.now(UTC)
    return JobResult(Outcome.FAILED, exit_code, now, now, error)


def test_failure_reason_tells_exit_timeout_and_engine_errors_apart() -> None:
    assert failure_reason(_result(1)) == "script_failure"
    assert failure_reason(_result(None, "timed out after 2s")) == "job_execution_timeout"
    assert failure_reason(_result(None, "cannot create the container")) == "runner_system_failure"


def test_retries_for_matches_gitlab_reasons_and_aliases() -> None:
    def job(*when: str) -> Job:
        return Job(name="j", stage="s", image="i", script=["x"], retry=1, retry_when=list(when))

    engine, timeout, script = _result(None, "lost"), _result(None, "timed out"), _result(2)
    assert retries_for(job(), engine) and retries_for(job(), script)  # no when: always
    assert retries_for(job("always"), timeout)
    assert retries_for(job("unknown_failure"), engine)
    assert retries_for(job("runner_system_failure"), engine)
    assert retries_for(job("stuck_or_timeout_failure"), timeout)
    assert not retries_for(job("runner_system_failure"), script)
    assert not retries_for(job("script_failure"), engine)
    assert not retries_for(job("api_failure"), script)


def test_failure_allowed_with_exit_codes_only_for_those_codes() -> None:
    job = Job(
        name="j", stage="s", image="i", script=["x"], allow_failure=True,
        allow_failure_exit_codes=[3, 137],
    )  # fmt: skip
    assert failure_allowed(job, 137) and failure_allowed(job, 3)
    assert not failure_allowed(job, 1)
    assert not failure_allowed(job, None)  # a timeout or an engine error is no listed code
    assert failure_allowed(job.model_copy(update={"allow_failure_exit_codes": []}), 1)
