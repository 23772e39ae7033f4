"""The Prefect artifacts of a run: its Gantt chart with the critical path, and its JUnit table."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from flowkit import make_pipeline

from backend.pipeline.model import Artifacts
from backend.runner.base import FakeOutcome
from backend.runner.fake import FakeRunner
from backend.schemas import Status

pytestmark = pytest.mark.usefixtures("prefect_api")

JUNIT = """<?xml version="1.0"?>
<testsuite name="s" tests="3">
  <testcase classname="t" name="ok" time="0.1"/>
  <testcase classname="t" name="also_ok" time="0.1"/>
  <testcase classname="t" name="broken" time="0.1"><failure message="no"/></testcase>
</testsuite>
"""


def _artifacts(flow_run_name: str) -> list[Any]:
    """Every artifact of the flow run named ``flow_run_name``."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterName,
    )

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[flow_run_name]))
        )
        assert len(runs) == 1, runs
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[runs[0].id]))
        )


def test_run_artifacts_gantt_and_tests_table_on_the_flow_run(make_context: Any) -> None:
    from flows.pipeline import run_pipeline

    name = f"art-{uuid.uuid4().hex[:8]}"
    pipeline = make_pipeline(
        name,
        {
            "build": [
                {"name": "a"},
                {"name": "b", "needs": ["a"]},
                {"name": "c", "needs": ["a"]},
                {
                    "name": "d",
                    "needs": ["b", "c"],
                    "artifacts_options": Artifacts(reports={"junit": ["report.xml"]}),
                },
            ]
        },
    )
    runner = FakeRunner(
        {"a": FakeOutcome(seconds=0.3), "b": FakeOutcome(seconds=1.0), "c": FakeOutcome()}
    )
    ctx, _ = make_context(pipeline, runner)
    (ctx.workspace / "report.xml").write_text(JUNIT)
    assert run_pipeline(ctx) is Status.SUCCESS
    found = {artifact.type: artifact for artifact in _artifacts(ctx.name)}
    assert set(found) == {"markdown", "table"}
    markdown = found["markdown"].data
    assert "**Critical path:** a → b → d" in markdown
    assert "critical path: a -> b -> d" in markdown
    assert json.loads(found["table"].data) == [
        {
            "stage": "build",
            "job": "d",
            "tests": 3,
            "passed": 2,
            "failed": 1,
            "errors": 0,
            "skipped": 0,
            "failed tests": "t.broken",
        }
    ]


def test_run_artifacts_failure_never_fails_the_run(
    make_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import prefect.artifacts

    from flows.pipeline import run_pipeline

    def broken(**_: Any) -> None:
        raise RuntimeError("artifact API down")

    monkeypatch.setattr(prefect.artifacts, "create_markdown_artifact", broken)
    ctx, _ = make_context(make_pipeline(f"art-{uuid.uuid4().hex[:8]}", {"b": [{"name": "x"}]}))
    assert run_pipeline(ctx) is Status.SUCCESS
    assert _artifacts(ctx.name) == []


def test_job_needs_are_the_file_s_not_the_plan_s(make_context: Any) -> None:
    from flows.pipeline import job_needs

    pipeline = make_pipeline(
        "g",
        {
            "build": [{"name": "a"}],
            "test": [
                {"name": "b", "needs": ["a"], "dag": True},  # the plan drops 'a': another stage
                {"name": "c"},
                {"name": "d", "needs": [], "dag": True},
            ],
        },
    ).model_copy(update={"format": "gitlab"})
    ctx, _ = make_context(pipeline)
    assert job_needs(ctx) == {"a": None, "d": [], "b": ["a"], "c": None}
