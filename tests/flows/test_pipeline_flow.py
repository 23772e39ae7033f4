"""The Prefect flow with a FakeRunner: ordering, fail-fast, allow_failure, limits, states."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from flowkit import make_pipeline

from backend.runner.base import FakeOutcome
from backend.runner.fake import FakeRunner
from backend.schemas import Status

pytestmark = pytest.mark.usefixtures("prefect_api")


def _run(ctx: Any) -> Status:
    from flows.pipeline import run_pipeline

    return run_pipeline(ctx)


def _statuses(store: Any, ctx: Any) -> dict[str, str]:
    run = store.get_run(ctx.pipeline.name, ctx.recorder.number)
    return {job.name: job.status.value for stage in run.stages for job in stage.jobs}


def test_flow_all_jobs_succeed(make_context: Any, store: Any) -> None:
    pipeline = make_pipeline(
        "ok", {"build": [{"name": "a"}], "test": [{"name": "b"}, {"name": "c"}]}
    )
    ctx, events = make_context(pipeline)
    assert _run(ctx) is Status.SUCCESS
    run = store.get_run("ok", 1)
    assert run.status is Status.SUCCESS
    assert [s.status.value for s in run.stages] == ["SUCCESS", "SUCCESS"]
    assert _statuses(store, ctx) == {"a": "SUCCESS", "b": "SUCCESS", "c": "SUCCESS"}
    assert all(j.started_at and j.finished_at for s in run.stages for j in s.jobs)
    assert [e.kind for e in events][:2] == ["run_started", "stage_started"]
    assert events[-1].kind == "run_finished"


def test_flow_fail_fast_cancels_sibling_and_later_stages(make_context: Any, store: Any) -> None:
    pipeline = make_pipeline(
        "ff",
        {
            "build": [{"name": "slow"}, {"name": "bad"}, {"name": "after-bad", "needs": ["bad"]}],
            "test": [{"name": "t"}],
        },
    )
    runner = FakeRunner(
        {"slow": FakeOutcome(seconds=30), "bad": FakeOutcome(exit_code=3, seconds=0.2)}
    )
    ctx, _ = make_context(pipeline, runner)
    started = time.monotonic()
    assert _run(ctx) is Status.FAILED
    assert time.monotonic() - started < 15  # the 30 s sibling was stopped, not waited for
    assert (
        runner.call("slow").outcome is not None and runner.call("slow").outcome.value == "CANCELED"
    )
    assert _statuses(store, ctx) == {
        "slow": "CANCELED",
        "bad": "FAILED",
        "after-bad": "CANCELED",
        "t": "CANCELED",
    }
    run = store.get_run("ff", 1)
    assert run.status is Status.FAILED
    assert [s.status.value for s in run.stages] == ["FAILED", "CANCELED"]
    assert run.stages[0].jobs[1].exit_code == 3
    assert [c.spec.job for c in runner.calls if c.spec.job == "t"] == []


def test_flow_allow_failure_lets_dependents_run(make_context: Any, store: Any) -> None:
    pipeline = make_pipeline(
        "af",
        {
            "test": [
                {"name": "flaky", "allow_failure": True},
                {"name": "next", "needs": ["flaky"]},
            ],
            "deploy": [{"name": "ship"}],
        },
    )
    ctx, _ = make_context(pipeline, FakeRunner({"flaky": FakeOutcome(exit_code=1)}))
    assert _run(ctx) is Status.SUCCESS
    assert _statuses(store, ctx) == {"flaky": "FAILED", "next": "SUCCESS", "ship": "SUCCESS"}
    assert store.get_run("af", 1).stages[0].status is Status.SUCCESS


def test_flow_job_starts_as_soon_as_its_needs_finish(make_context: Any) -> None:
    # a chain of short jobs beside a slow one: the chain's end starts before the slow one ends
    pipeline = make_pipeline(
        "dag",
        {
            "build": [
                {"name": "slow"},
                {"name": "c1"},
                {"name": "c2", "needs": ["c1"]},
                {"name": "c3", "needs": ["c2"]},
            ]
        },
    )
    runner = FakeRunner(
        {
            "slow": FakeOutcome(seconds=3),
            "c1": FakeOutcome(seconds=0.2),
            "c2": FakeOutcome(seconds=0.2),
            "c3": FakeOutcome(seconds=0.2),
        }
    )
    ctx, _ = make_context(pipeline, runner)
    assert _run(ctx) is Status.SUCCESS
    slow, c1, c2, c3 = (runner.call(n) for n in ("slow", "c1", "c2", "c3"))
    assert c1.finished <= c2.started and c2.finished <= c3.started  # needs respected
    assert c3.finished < slow.finished  # not level by level


def test_flow_jobs_limit_never_exceeded(make_context: Any) -> None:
    pipeline = make_pipeline("lim", {"build": [{"name": f"j{i}"} for i in range(5)]})
    runner = FakeRunner({f"j{i}": FakeOutcome(seconds=0.2) for i in range(5)})
    ctx, _ = make_context(pipeline, runner, max_jobs=2)
    assert _run(ctx) is Status.SUCCESS
    points = sorted(
        [(c.started, 1) for c in runner.calls] + [(c.finished, -1) for c in runner.calls]
    )
    running = peak = 0
    for _, delta in points:
        running += delta
        peak = max(peak, running)
    assert peak == 2


def test_flow_retry_reruns_failed_job(make_context: Any, store: Any) -> None:
    pipeline = make_pipeline("rt", {"build": [{"name": "flaky", "retry": 2}]})
    runner = FakeRunner(
        {"flaky": [FakeOutcome(exit_code=1), FakeOutcome(exit_code=1), FakeOutcome()]}
    )
    ctx, events = make_context(pipeline, runner)
    assert _run(ctx) is Status.SUCCESS
    assert len([c for c in runner.calls if c.spec.job == "flaky"]) == 3
    assert sum("retrying" in (e.text or "") for e in events if e.kind == "line") == 2


def test_flow_timeout_fails_job(make_context: Any, store: Any) -> None:
    pipeline = make_pipeline("to", {"build": [{"name": "sleepy", "timeout": 0.3}]})
    ctx, _ = make_context(pipeline, FakeRunner({"sleepy": FakeOutcome(seconds=30)}))
    assert _run(ctx) is Status.FAILED
    job = store.get_job("to", 1, "sleepy")
    assert job.status is Status.FAILED and job.exit_code is None


def test_flow_missing_image_fails_job_with_message(make_context: Any, store: Any) -> None:
    pipeline = make_pipeline("img", {"build": [{"name": "a", "image": "nope:1"}]})
    ctx, events = make_context(pipeline, FakeRunner(missing_images={"nope:1"}))
    assert _run(ctx) is Status.FAILED
    finished = [e for e in events if e.kind == "job_finished"]
    assert finished[0].text == "image 'nope:1' not found"


def test_flow_cancel_from_another_thread_cancels_run(make_context: Any, store: Any) -> None:
    pipeline = make_pipeline("cx", {"build": [{"name": "long"}], "test": [{"name": "t"}]})
    ctx, _ = make_context(pipeline, FakeRunner({"long": FakeOutcome(seconds=30)}))
    threading.Timer(1.0, ctx.cancel_run).start()
    assert _run(ctx) is Status.CANCELED
    assert _statuses(store, ctx) == {"long": "CANCELED", "t": "CANCELED"}
    assert store.get_run("cx", 1).status is Status.CANCELED


def test_flow_cancel_from_prefect_stops_that_run_and_not_another(
    make_context: Any, store: Any
) -> None:
    from flows.pipeline import request_cancel

    one = make_pipeline("one", {"build": [{"name": "long"}]})
    other = make_pipeline("other", {"build": [{"name": "long"}]})
    a, _ = make_context(one, FakeRunner({"long": FakeOutcome(seconds=30)}))
    b, _ = make_context(other, FakeRunner({"long": FakeOutcome(seconds=6)}))
    results: dict[str, Status] = {}
    threads = [
        threading.Thread(target=lambda c=c: results.__setitem__(c.pipeline.name, _run(c)))
        for c in (a, b)
    ]
    for thread in threads:
        thread.start()
    flow_run_id = None
    deadline = time.monotonic() + 30
    while flow_run_id is None and time.monotonic() < deadline:
        found = [f for _, name, _, f in store.open_runs() if name == "one" and f]
        flow_run_id = found[0] if found else None
        time.sleep(0.05)
    assert flow_run_id is not None

    request_cancel(flow_run_id)  # as the Prefect UI's cancel button does
    for thread in threads:
        thread.join(60)

    assert results == {"one": Status.CANCELED, "other": Status.SUCCESS}  # one poll serves both


def test_flow_run_is_named_after_pipeline_and_number(make_context: Any) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    pipeline = make_pipeline("named", {"build": [{"name": "a"}]})
    ctx, _ = make_context(pipeline)
    _run(ctx)
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=["named#1"]))
        )
    assert [r.state.type.value for r in runs] == ["COMPLETED"]


def test_flow_no_heartbeat_context_turns_heartbeats_off_and_reuses_its_settings() -> None:
    from prefect.settings import get_current_settings

    from flows.pipeline import _no_heartbeat

    before = get_current_settings()
    assert before.flows.heartbeat_frequency is not None
    with _no_heartbeat():
        first = get_current_settings()
        with _no_heartbeat():  # already quiet: nothing new
            assert get_current_settings() is first
    with _no_heartbeat():
        again = get_current_settings()
    assert first.flows.heartbeat_frequency is None
    assert again is first  # made once, not validated again for every run
    assert get_current_settings() is before
    assert first.api.url == before.api.url


def test_flow_image_of_a_job_that_does_not_run_is_never_checked(make_context: Any) -> None:
    # a job the rules (or --job) leave out must not fail the run because its image is missing
    pipeline = make_pipeline(
        "some",
        {"build": [
            {"name": "a"},
            {"name": "b", "image": "nowhere:latest", "run": False, "skip_reason": "not selected"},
        ]},
    )
    runner = FakeRunner(missing_images={"nowhere:latest"})
    ctx, events = make_context(pipeline, runner)
    assert _run(ctx) is Status.SUCCESS
    assert not [e for e in events if e.kind == "warning"]
