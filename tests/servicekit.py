"""A run without Prefect: the flow's steps done in order in this thread, for service tests.

``plain_flow`` does what ``flows.pipeline.pipeline_flow`` does with the same seams of
``backend.execution`` (images, stages in order, each job after the jobs before it in plan
order, stage and run outcomes), so ``Service`` can be tested with a ``FakeRunner`` and no
Prefect server.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from backend.execution import (
    RunContext,
    end_run,
    execute_job,
    prepare_images,
    run_status,
    skip_stage,
    stage_status,
)
from backend.schemas import Status

PIPELINE = """\
pipeline:
  name: demo
  image: cicd-busybox:latest
stages: [build, test]
jobs:
  - name: compile
    stage: build
    script: [echo compiling]
  - name: unit
    stage: test
    script: [echo testing]
  - name: lint
    stage: test
    script: [echo linting]
    allow_failure: true
"""


def plain_flow(ctx: RunContext) -> Status:
    """Run ``ctx``'s pipeline to its end in this thread, recording it as the flow does."""
    ctx.recorder.run_started()
    prepare_images(ctx)
    for stage, jobs in ctx.stage_order.items():
        if ctx.cancel.is_set():
            skip_stage(ctx, stage)
            continue
        ctx.recorder.stage_started(stage)
        for job in jobs:
            execute_job(ctx, job)
        ctx.recorder.stage_finished(stage, stage_status(ctx, stage))
    return end_run(ctx, run_status(ctx))  # as the flow: recorded once, then ctx.on_end


def make_repo(path: Path, pipeline: str = PIPELINE) -> Path:
    """A git repository at ``path`` whose one commit holds ``.pipelines/pipeline.yaml``."""
    (path / ".pipelines").mkdir(parents=True)
    (path / ".pipelines" / "pipeline.yaml").write_text(pipeline)
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "PATH": "/usr/bin:/bin:/usr/local/bin",
        "HOME": str(path),
    }
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "first"]):
        subprocess.run(["git", "-C", str(path), *args], check=True, env=env, capture_output=True)
    return path
