"""Fixtures for flow tests: a real SQLite store, a FakeRunner and a context factory."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from backend.execution import RunContext
from backend.pipeline.model import Pipeline
from backend.recording import Event, Recorder
from backend.runner.fake import FakeRunner


@pytest.fixture
def store(tmp_path: Path) -> Any:
    """A real SQLite history store."""
    from backend.store import Store

    return Store(f"sqlite:///{tmp_path / 'cicd.db'}")


@pytest.fixture
def make_context(tmp_path: Path, store: Any) -> Callable[..., tuple[RunContext, list[Event]]]:
    """Build a registered-in-store run of a pipeline on a FakeRunner; returns (ctx, events)."""

    def factory(
        pipeline: Pipeline, runner: FakeRunner | None = None, **kwargs: Any
    ) -> tuple[RunContext, list[Event]]:
        from backend.pipeline import plan_pipeline
        from backend.service import RunRequest

        plan = plan_pipeline(pipeline)
        order = {stage.name: list(stage.jobs) for stage in plan.stages}
        request = RunRequest(
            pipeline=pipeline, file="p.yaml", file_content="", repo=str(tmp_path), commit="0" * 40
        )
        run_id, number = store.create_run(
            pipeline.name,
            request.recorded_stages(plan),  # as the service records a run: MANUAL jobs too
            repo=str(tmp_path),
            branch="main",
            commit="0" * 40,
            file="p.yaml",
            request_key=uuid.uuid4().hex,
        )
        events: list[Event] = []
        recorder = Recorder(
            store,
            run_id,
            pipeline.name,
            number,
            tmp_path / "logs",
            sinks=[events.append],
            worker="test/fake",
        )
        workspace = tmp_path / "ws"
        workspace.mkdir(exist_ok=True)
        ctx = RunContext(
            key=uuid.uuid4().hex,
            pipeline=pipeline,
            stage_order=order,
            runner=runner or FakeRunner(),
            recorder=recorder,
            workspace=workspace,
            commit="0" * 40,
            store=store,
            **kwargs,
        )
        return ctx, events

    return factory
