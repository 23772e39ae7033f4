"""A ``RunContext`` recorded in a real store, for tests of ``backend.execution`` without Prefect."""

from __future__ import annotations

from pathlib import Path

from backend.execution import RunContext
from backend.pipeline.model import Pipeline
from backend.pipeline.plan import plan_pipeline
from backend.recording import Recorder
from backend.runner.fake import FakeRunner
from backend.store import Store


def recorded_context(
    store: Store, pipeline: Pipeline, runner: FakeRunner, tmp_path: Path
) -> RunContext:
    """A new run of ``pipeline`` in ``store``, with its Recorder, workspace and ``runner``."""
    stage_order = {stage.name: list(stage.jobs) for stage in plan_pipeline(pipeline).stages}
    stages = [
        (s, [(j.name, j.image, j.allow_failure) for j in jobs]) for s, jobs in stage_order.items()
    ]
    name = pipeline.name
    run_id, number = store.create_run(
        name, stages, repo="/r", branch="main", commit="c" * 40, file="f", request_key="k"
    )
    recorder = Recorder(store, run_id, name, number, tmp_path / "logs")
    workspace = tmp_path / "ws" / str(run_id)
    workspace.mkdir(parents=True)
    return RunContext(
        key=f"{name}-{run_id}",
        pipeline=pipeline,
        stage_order=stage_order,
        runner=runner,
        recorder=recorder,
        workspace=workspace,
        commit="c" * 40,
        artifacts_dir=tmp_path / "artifacts" / str(run_id),
        store=store,
    )
