"""Even past validation, a job's name never becomes a path: its log and artifacts stay home."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from flowkit import make_pipeline

from backend.execution import execute_job
from backend.schemas import Status


def _files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


def test_execute_job_hostile_names_keep_logs_and_artifacts_inside(
    make_context: Any, tmp_path: Path
) -> None:
    outside = Path("/tmp") / f"cicd-test-{uuid.uuid4().hex}"
    names = ["../../../escaped", f"{outside}/x", "..", "a/../../b"]
    pipeline = make_pipeline(
        "hostile", {"build": [{"name": name, "artifacts": ["out/"]} for name in names]}
    )
    home = tmp_path / "home"
    ctx, _ = make_context(pipeline, artifacts_dir=home / "artifacts" / "1")
    ctx.recorder.logs_dir = home / "logs"
    (ctx.workspace / "out").mkdir()
    (ctx.workspace / "out" / "f.txt").write_text("artifact\n")
    for job in pipeline.jobs:
        assert execute_job(ctx, job) is Status.SUCCESS
    ctx.recorder.close()
    assert not outside.exists()
    everything = {p.resolve() for p in tmp_path.rglob("*")}
    assert all(p.is_relative_to(tmp_path.resolve()) for p in everything)
    stored = _files(home / "artifacts")
    assert len(stored) == len(names)  # one copy per job, none shared, none elsewhere
    assert all(p.resolve().is_relative_to((home / "artifacts" / "1").resolve()) for p in stored)
    logs = [p for p in _files(home / "logs") if p.suffix == ".log"]
    assert len(logs) == len(names)
    store = {"cicd.db", "cicd.db-shm", "cicd.db-wal"}
    assert {p.name for p in tmp_path.iterdir()} - store == {"home", "ws"}  # nothing beside
