"""after_script through the Prefect flow with a FakeRunner: the job's after_script reaches the
runner's JobSpec, its lines follow the script's, and a cancel can be asked for twice.
"""

from __future__ import annotations

from typing import Any

import pytest
from flowkit import make_pipeline

from backend.runner.base import CancelEvent, FakeOutcome, stop_requests
from backend.runner.fake import FakeRunner
from backend.schemas import Status

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_after_script_flow_job_spec_carries_after_script_and_lines_follow_script(
    make_context: Any,
) -> None:
    from flows.pipeline import run_pipeline

    pipeline = make_pipeline(
        "after",
        {"build": [{"name": "a", "before_script": ["b"], "after_script": ["x", "y"]}]},
    ).model_copy(update={"format": "gitlab"})
    runner = FakeRunner({"a": FakeOutcome(exit_code=1, lines=["out"])})
    ctx, events = make_context(pipeline, runner)

    assert run_pipeline(ctx) is Status.FAILED

    spec = runner.call("a").spec
    assert (spec.script, spec.after_script) == (["b", "true"], ["x", "y"])
    assert [e.text for e in events if e.kind == "line"] == ["out", "$ x", "$ y"]


def test_after_script_flow_run_cancel_event_counts_requests(make_context: Any) -> None:
    ctx, _ = make_context(make_pipeline("count", {"build": [{"name": "a"}]}))

    assert isinstance(ctx.cancel, CancelEvent) and stop_requests(ctx.cancel) == 0
    ctx.cancel_run()
    ctx.cancel_run()

    assert (ctx.cancel.is_set(), stop_requests(ctx.cancel)) == (True, 2)
