"""Where a job runs and what it hands on: its workspace, the artifacts it keeps and receives.

Today every job of a run shares the run's checkout (``ctx.workspace``); artifacts are copied out
of it after a job succeeds. (Issue 10 turns this into GitLab's per-job workspaces.)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from backend.paths import safe_child
from backend.pipeline.model import Job
from backend.schemas import Status

if TYPE_CHECKING:
    from backend.execution import RunContext


def open_workspace(ctx: RunContext, job: Job, line: Callable[[str], None]) -> Path:
    """The directory ``job`` runs in (mounted at ``/workspace``)."""
    return ctx.workspace


def close_workspace(ctx: RunContext, job: Job, workspace: Path) -> None:
    """Release what ``open_workspace`` made for ``job``."""


def dotenv_of_dependencies(ctx: RunContext, job: Job) -> dict[str, str]:
    """Variables ``reports: dotenv`` of the jobs ``job`` depends on hand to it."""
    return {}


def collect_artifacts(
    ctx: RunContext, job: Job, workspace: Path, status: Status, line: Callable[[str], None]
) -> None:
    """Keep ``job``'s artifacts from ``workspace`` and record them in the store."""
    if status is not Status.SUCCESS or not job.artifacts or ctx.artifacts_dir is None:
        return
    from backend.runner.artifacts import ArtifactPatternError
    from backend.runner.artifacts import collect_artifacts as collect

    dest = safe_child(ctx.artifacts_dir, job.name)  # a name is never a path (../x, /tmp/x)
    try:
        result = collect(workspace, list(job.artifacts), dest)
    except ArtifactPatternError as exc:
        line(f"cicd: warning: {exc}")
        return
    for warning in result.warnings:
        line(f"cicd: warning: {warning}")
    for item in result.files:
        if ctx.store is not None:
            ctx.store.add_artifact(
                ctx.recorder.run_id,
                job.name,
                item.path,
                item.size,
                item.sha256,
                str(item.stored_path),
            )
    if result.files:
        line(f"cicd: collected {len(result.files)} artifact file(s)")
