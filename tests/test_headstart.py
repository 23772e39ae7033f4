"""``backend.headstart``: a run's jobs start ahead of its flow, whose tasks adopt them.

Each test builds a ``RunContext`` by hand over a ``Recorder`` on a SQLite store and a
``FakeRunner``, starts a ``HeadStart`` and then does what the Prefect flow's job tasks do
(``execute_job`` per job, in plan order). Every job must run exactly once, whoever took it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from runkit import recorded_context

from backend.execution import (
    Claim,
    RunContext,
    begin_run,
    end_run,
    execute_job,
    finish_stage,
    run_status,
)
from backend.headstart import HeadStart
from backend.pipeline import parse_pipeline
from backend.pipeline.gitlab.front import parse_gitlab
from backend.pipeline.model import Job
from backend.recording import Event
from backend.runner.base import FakeOutcome
from backend.runner.fake import FakeRunner
from backend.schemas import Status
from backend.store import Store

PIPELINE = """\
pipeline:
  name: head
  image: cicd-busybox:latest
stages: [build, test]
jobs:
  - {name: fetch, stage: build, script: [fetch]}
  - {name: compile, stage: build, script: [make], needs: [fetch]}
  - {name: slow, stage: build, script: [sleep]}
  - {name: unit, stage: test, script: [make test]}
"""

GITLAB = """\
stages: [build, test]
default: {image: cicd-busybox:latest}
fetch: {stage: build, script: [fetch]}
compile: {stage: build, script: [make], needs: [fetch]}
notify: {stage: build, script: [notify], when: always}
unit: {stage: test, script: [make test]}
"""

MakeContext = Callable[..., RunContext]


@pytest.fixture
def make_ctx(tmp_path: Path) -> MakeContext:
    """A ``RunContext`` of ``PIPELINE`` recorded in a fresh store, with a given runner."""
    store = Store(f"sqlite:///{tmp_path / 'cicd.db'}")

    def make(runner: FakeRunner, gitlab: bool = False) -> RunContext:
        if gitlab:
            pipeline = parse_gitlab(GITLAB, ".gitlab-ci.yml", name="head")
        else:
            pipeline = parse_pipeline(PIPELINE, ".pipelines/pipeline.yaml")
        return recorded_context(store, pipeline, runner, tmp_path)

    return make


def started(runner: FakeRunner) -> list[str]:
    return [call.spec.job for call in runner.calls]


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def planned(ctx: RunContext, name: str) -> Job:
    """The job ``name`` as the run's plan has it."""
    return next(job for jobs in ctx.stage_order.values() for job in jobs if job.name == name)


def flow_runs(ctx: RunContext) -> dict[str, tuple[Status, list[str]]]:
    """What the flow's job tasks do: each job of each stage, in plan order; status and lines."""
    seen: dict[str, tuple[Status, list[str]]] = {}
    for jobs in ctx.stage_order.values():
        for job in jobs:
            lines: list[str] = []
            seen[job.name] = (execute_job(ctx, job, lines.append), lines)
    return seen


def test_head_start_runs_first_stage_before_the_flow_which_adopts_each_job_once(
    make_ctx: MakeContext,
) -> None:
    runner = FakeRunner(
        outcomes={
            "fetch": FakeOutcome(lines=["fetched"]),
            "compile": FakeOutcome(lines=["compiled"]),
            "slow": FakeOutcome(lines=["slept"], seconds=0.3),
        }
    )
    ctx = make_ctx(runner)
    head = HeadStart(ctx).start()

    wait_until(lambda: {"fetch", "compile", "slow"} <= set(started(runner)))
    seen = flow_runs(ctx)
    head.join()

    assert sorted(started(runner)) == ["compile", "fetch", "slow", "unit"]  # each once
    assert started(runner).index("fetch") < started(runner).index("compile")  # its need first
    assert head.started[:3] == ["fetch", "slow", "compile"]  # unit: whoever took it first
    assert seen["fetch"] == (Status.SUCCESS, ["fetched"])  # the lines reach the adopting task
    assert seen["compile"] == (Status.SUCCESS, ["compiled"])
    assert seen["slow"][0] is Status.SUCCESS and "slept" in seen["slow"][1]
    ctx.recorder.flush()
    run = ctx.store.get_run("head", ctx.recorder.number)
    assert {j.name: j.status for s in run.stages for j in s.jobs} == dict.fromkeys(
        ["fetch", "compile", "slow", "unit"], Status.SUCCESS
    )
    assert run.status is Status.RUNNING and run.started_at is not None


def test_head_start_next_stage_begins_when_every_job_succeeded(make_ctx: MakeContext) -> None:
    runner = FakeRunner(outcomes={"unit": FakeOutcome(lines=["tested"], seconds=0.3)})
    ctx = make_ctx(runner)
    events: list[Event] = []
    ctx.recorder.sinks.append(events.append)
    head = HeadStart(ctx).start()
    wait_until(lambda: "unit" in started(runner))  # the flow has not begun: build is settled

    seen = flow_runs(ctx)
    head.join()

    assert head.started == ["fetch", "slow", "compile", "unit"]
    assert sorted(started(runner)) == ["compile", "fetch", "slow", "unit"]  # each once
    assert seen["unit"] == (Status.SUCCESS, ["tested"])
    stage_events = [(e.kind, e.stage) for e in events if e.kind.startswith("stage_")]
    assert stage_events == [  # each recorded once: the flow's stages find them settled
        ("stage_started", "build"),
        ("stage_finished", "build"),
        ("stage_started", "test"),
        ("stage_finished", "test"),
    ]
    assert finish_stage(ctx, "test") is Status.SUCCESS  # what the flow's stage then finds
    ctx.recorder.flush()
    run = ctx.store.get_run("head", ctx.recorder.number)
    assert [(s.name, s.status) for s in run.stages] == [
        ("build", Status.SUCCESS),
        ("test", Status.SUCCESS),
    ]


def test_head_start_every_job_succeeded_before_the_flow_calls_on_complete(
    make_ctx: MakeContext,
) -> None:
    ctx = make_ctx(FakeRunner())
    completed: list[list[str]] = []
    head = HeadStart(ctx, on_complete=lambda: completed.append(sorted(ctx.statuses))).start()
    wait_until(lambda: bool(completed))

    assert completed == [["compile", "fetch", "slow", "unit"]]  # called once, after every job
    assert end_run(ctx, run_status(ctx)) is Status.SUCCESS  # what on_complete does (service)
    seen = flow_runs(ctx)  # the flow, when Prefect answers, adopts every job
    head.join()
    assert {name: status for name, (status, _) in seen.items()} == dict.fromkeys(
        seen, Status.SUCCESS
    )
    assert end_run(ctx, Status.FAILED) is Status.SUCCESS  # the flow keeps the recorded end
    run = ctx.store.get_run("head", ctx.recorder.number)
    assert run.status is Status.SUCCESS and run.finished_at is not None


def test_head_start_job_its_task_took_first_runs_there_and_the_run_still_completes(
    make_ctx: MakeContext,
) -> None:
    runner = FakeRunner(outcomes={"slow": FakeOutcome(seconds=0.3)})
    ctx = make_ctx(runner)
    slow = planned(ctx, "slow")
    by_task = threading.Thread(target=execute_job, args=(ctx, slow))  # its task, before the head
    by_task.start()
    wait_until(lambda: "slow" in started(runner))
    completed: list[list[str]] = []
    head = HeadStart(ctx, on_complete=lambda: completed.append(sorted(ctx.statuses))).start()
    wait_until(lambda: bool(completed))  # after slow, run by its task, and unit
    by_task.join()
    head.join()

    assert head.started == ["fetch", "compile", "unit"]  # not slow: its task's
    assert sorted(started(runner)) == ["compile", "fetch", "slow", "unit"]  # each once
    assert completed == [["compile", "fetch", "slow", "unit"]]
    assert ctx.statuses["slow"] is Status.SUCCESS


def test_head_start_runs_a_later_stage_ahead_of_a_flow_that_has_begun(
    make_ctx: MakeContext,
) -> None:
    runner = FakeRunner(
        outcomes={"fetch": FakeOutcome(seconds=0.3), "unit": FakeOutcome(lines=["tested"])}
    )
    ctx = make_ctx(runner)
    head = HeadStart(ctx).start()
    wait_until(lambda: "fetch" in started(runner))
    build = {job.name: execute_job(ctx, job) for job in ctx.stage_order["build"]}  # its 1st stage
    assert build == dict.fromkeys(["fetch", "compile", "slow"], Status.SUCCESS)

    wait_until(lambda: "unit" in started(runner))  # the flow has not reached its second stage
    lines: list[str] = []
    assert execute_job(ctx, planned(ctx, "unit"), lines.append) is Status.SUCCESS
    head.join()

    assert "unit" in head.started and lines == ["tested"]  # adopted by its task
    assert sorted(started(runner)) == ["compile", "fetch", "slow", "unit"]  # each once


def test_head_start_allowed_failure_leaves_later_stages_to_the_flow(tmp_path: Path) -> None:
    pipeline = parse_gitlab(
        "stages: [build, test]\n"
        "default: {image: cicd-busybox:latest}\n"
        "lint: {stage: build, script: [lint], allow_failure: true}\n"
        "unit: {stage: test, script: [make test]}\n",
        ".gitlab-ci.yml",
        name="head",
    )
    runner = FakeRunner(outcomes={"lint": FakeOutcome(exit_code=1)})
    ctx = recorded_context(Store(f"sqlite:///{tmp_path / 'cicd.db'}"), pipeline, runner, tmp_path)
    head = HeadStart(ctx).start()
    wait_until(lambda: ctx.statuses.get("lint") is Status.FAILED)
    time.sleep(0.6)  # more than the head start's own poll: it would have started unit by now

    assert head.started == ["lint"] and "unit" not in started(runner)
    assert "build" not in ctx.stages_ended  # the flow settles the stage of a failure
    seen = flow_runs(ctx)
    head.join()
    assert seen["unit"][0] is Status.SUCCESS and started(runner).count("unit") == 1


def test_head_start_failed_need_leaves_its_dependant_to_the_flow(make_ctx: MakeContext) -> None:
    runner = FakeRunner(
        outcomes={"fetch": FakeOutcome(exit_code=1), "slow": FakeOutcome(seconds=5)}
    )
    ctx = make_ctx(runner)
    head = HeadStart(ctx).start()
    wait_until(lambda: ctx.cancel.is_set())  # native: the failure stops the run

    seen = flow_runs(ctx)
    head.join()

    assert "compile" not in head.started
    assert seen["fetch"][0] is Status.FAILED
    assert seen["slow"][0] is Status.CANCELED  # killed by fail-fast, adopted as such
    assert seen["compile"][0] is Status.CANCELED  # never started
    assert started(runner).count("fetch") == 1


def test_head_start_gitlab_conditional_job_is_left_to_the_flow(make_ctx: MakeContext) -> None:
    runner = FakeRunner()
    ctx = make_ctx(runner, gitlab=True)
    head = HeadStart(ctx).start()
    wait_until(lambda: {"fetch", "compile"} <= set(started(runner)))

    seen = flow_runs(ctx)
    head.join()

    assert head.started == ["fetch", "compile"]  # when: always depends on outcomes: the flow's
    assert sorted(started(runner)) == ["compile", "fetch", "notify", "unit"]
    assert {name: status for name, (status, _) in seen.items()} == dict.fromkeys(
        seen, Status.SUCCESS
    )


def test_head_start_canceled_run_joins_with_its_jobs_ended(make_ctx: MakeContext) -> None:
    runner = FakeRunner(outcomes={"slow": FakeOutcome(seconds=60)})
    ctx = make_ctx(runner)
    head = HeadStart(ctx).start()
    wait_until(lambda: "slow" in started(runner))

    ctx.cancel_run()  # e.g. Ctrl-C while the Prefect server boots
    head.join()

    assert ctx.statuses["slow"] is Status.CANCELED


def test_claim_buffers_at_most_max_buffered_lines_for_its_adopter() -> None:
    claim = Claim()
    for i in range(Claim.MAX_BUFFERED + 50):
        claim.line(f"line {i}")
    claim.finish(Status.SUCCESS)
    got: list[str] = []

    assert claim.adopt(got.append) is Status.SUCCESS
    assert len(got) == Claim.MAX_BUFFERED and got[0] == "line 0"


def test_begin_run_twice_records_the_start_once_then_attaches_the_flow_run(
    make_ctx: MakeContext,
) -> None:
    ctx = make_ctx(FakeRunner())
    begin_run(ctx)
    ctx.recorder.flush()
    first = ctx.store.get_run("head", ctx.recorder.number).started_at

    time.sleep(0.05)
    begin_run(ctx, flow_run_id="0b5c0d6e-0000-4000-8000-000000000000")
    ctx.recorder.flush()

    run = ctx.store.get_run("head", ctx.recorder.number)
    assert run.started_at == first
    assert ctx.store.open_runs()[0][3] == "0b5c0d6e-0000-4000-8000-000000000000"
