"""``backend.execution``'s seams without Prefect: a job's body, fail-fast, stage and run outcomes.

Each test builds a ``RunContext`` by hand over a ``Recorder`` on a SQLite store and a
``FakeRunner``, calls the functions the Prefect flow calls, and reads what the store recorded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from runkit import recorded_context

from backend.execution import (
    RunContext,
    execute_job,
    prepare_images,
    run_status,
    skip_stage,
    stage_status,
)
from backend.pipeline import parse_pipeline
from backend.runner.base import FakeOutcome
from backend.runner.fake import FakeRunner
from backend.schemas import Status
from backend.store import Store

PIPELINE = """\
pipeline:
  name: seams
  image: cicd-busybox:latest
stages: [build, test, deploy]
jobs:
  - {name: compile, stage: build, script: [make]}
  - {name: unit, stage: test, script: [make test]}
  - {name: lint, stage: test, script: [make lint], allow_failure: true}
  - {name: ship, stage: deploy, script: [make ship]}
"""

MakeContext = Callable[..., RunContext]


@pytest.fixture
def make_ctx(tmp_path: Path) -> MakeContext:
    """A ``RunContext`` of ``PIPELINE`` recorded in a fresh store, with a given runner."""
    store = Store(f"sqlite:///{tmp_path / 'cicd.db'}")
    pipeline = parse_pipeline(PIPELINE, ".pipelines/pipeline.yaml")

    def make(runner: FakeRunner) -> RunContext:
        return recorded_context(store, pipeline, runner, tmp_path)

    return make


def recorded(ctx: RunContext) -> dict[str, Status]:
    """Each job's status as the store holds it."""
    ctx.recorder.flush()
    run = ctx.store.get_run("seams", ctx.recorder.number)
    return {job.name: job.status for stage in run.stages for job in stage.jobs}


def job(ctx: RunContext, name: str):
    return ctx.pipeline.job(name)


def test_execute_job_success_recorded_with_its_log(make_ctx: MakeContext) -> None:
    ctx = make_ctx(FakeRunner(outcomes={"compile": FakeOutcome(lines=["built"])}))

    status = execute_job(ctx, job(ctx, "compile"))

    assert status is Status.SUCCESS
    assert recorded(ctx)["compile"] is Status.SUCCESS
    log = ctx.store.job_log_path("seams", 1, "compile")
    assert log is not None and "built" in Path(log).read_text()


def test_execute_job_failure_fails_fast_and_later_jobs_do_not_run(make_ctx: MakeContext) -> None:
    runner = FakeRunner(outcomes={"compile": FakeOutcome(exit_code=1)})
    ctx = make_ctx(runner)

    first = execute_job(ctx, job(ctx, "compile"))
    later = execute_job(ctx, job(ctx, "unit"))

    assert (first, later) == (Status.FAILED, Status.CANCELED)
    assert ctx.cancel.is_set() and ctx.failed_job == "compile"
    assert [call.spec.job for call in runner.calls] == ["compile"]
    assert stage_status(ctx, "build") is Status.FAILED
    assert run_status(ctx) is Status.FAILED


def test_execute_job_allowed_failure_keeps_stage_and_run_successful(
    make_ctx: MakeContext,
) -> None:
    ctx = make_ctx(FakeRunner(outcomes={"lint": FakeOutcome(exit_code=3)}))

    statuses = [execute_job(ctx, job(ctx, name)) for name in ("unit", "lint")]

    assert statuses == [Status.SUCCESS, Status.FAILED]
    assert not ctx.cancel.is_set()
    assert stage_status(ctx, "test") is Status.SUCCESS
    assert run_status(ctx) is Status.SUCCESS


def test_stage_status_jobs_that_never_ran_are_canceled(make_ctx: MakeContext) -> None:
    ctx = make_ctx(FakeRunner())
    execute_job(ctx, job(ctx, "unit"))

    status = stage_status(ctx, "test")  # lint never ran

    assert status is Status.CANCELED
    assert recorded(ctx)["lint"] is Status.CANCELED


def test_skip_stage_cancels_the_stage_and_its_jobs(make_ctx: MakeContext) -> None:
    ctx = make_ctx(FakeRunner())

    skip_stage(ctx, "deploy")

    ctx.recorder.flush()
    run = ctx.store.get_run("seams", 1)
    deploy = next(stage for stage in run.stages if stage.name == "deploy")
    assert deploy.status is Status.CANCELED
    assert [j.status for j in deploy.jobs] == [Status.CANCELED]


def test_cancel_run_stops_a_running_job_and_the_run_is_canceled(make_ctx: MakeContext) -> None:
    runner = FakeRunner(outcomes={"compile": FakeOutcome(seconds=60)})
    ctx = make_ctx(runner)
    result: list[Status] = []
    worker = threading.Thread(target=lambda: result.append(execute_job(ctx, job(ctx, "compile"))))
    worker.start()
    deadline = time.monotonic() + 10
    while not runner.calls and time.monotonic() < deadline:
        time.sleep(0.01)

    ctx.cancel_run()
    worker.join(10)

    assert result == [Status.CANCELED]
    assert run_status(ctx) is Status.CANCELED


def test_prepare_images_missing_image_fails_its_job_without_running_it(
    make_ctx: MakeContext,
) -> None:
    runner = FakeRunner(missing_images={"cicd-busybox:latest"})
    ctx = make_ctx(runner)

    prepare_images(ctx)
    status = execute_job(ctx, job(ctx, "compile"))

    assert status is Status.FAILED
    assert runner.calls == []
    assert ctx.image_errors == {"cicd-busybox:latest": "image 'cicd-busybox:latest' not found"}
