"""``Service.execute`` when the run breaks on an unexpected error whose text holds a secret.

A real ``Service`` over a SQLite store and the session's Prefect server, with a ``FakeRunner``
whose engine fails while the flow prepares the run's images.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterable
from pathlib import Path
from uuid import UUID

import pytest

from backend.errors import CicdError, UsageError
from backend.requests import prepare_run
from backend.runner.fake import FakeRunner
from backend.runs import PullPolicy
from backend.service import Service
from backend.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent / "api"))  # not a package
from apikit import make_repo

SECRET = "hunter2-crash-value"


class BrokenEngine(FakeRunner):
    """A runner whose engine answers image checks with an error quoting the run's secret."""

    def ensure_images(self, images: Iterable[str], policy: PullPolicy) -> dict[str, str | None]:
        """Fail the way an engine error that echoes a credential would."""
        raise RuntimeError(f"registry refused token {SECRET} for {sorted(images)}")


def stored(home: Path, column: str) -> str | None:
    """One column of the only run in the SQLite store under ``home``."""
    with sqlite3.connect(home / "cicd.db") as db:
        (value,) = db.execute(f"SELECT {column} FROM pipeline_runs").fetchone()
    return None if value is None else str(value)


def files_containing(root: Path, needle: bytes) -> list[Path]:
    """Files under ``root`` whose bytes contain ``needle``."""
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_execute_crash_error_quoting_a_secret_is_stored_masked(
    tmp_path: Path, prefect_api: str
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    home = tmp_path / "home"
    prepared = prepare_run(
        cwd=make_repo(tmp_path / "repo"), cache_dir=tmp_path / "cache", secrets={"TOKEN": SECRET}
    )
    service = Service(Settings(home=home), runner=BrokenEngine())
    submission = service.start(prepared.request, prepared.source)

    with pytest.raises(CicdError) as raised:
        service.execute(submission)

    assert str(raised.value) == (
        "registry refused token **** for ['cicd-busybox:latest']"
    )
    run = service.run(submission.pipeline, submission.number)
    assert run.status.value == "FAILED" and run.finished_at is not None
    assert {job.status.value for stage in run.stages for job in stage.jobs} == {"CANCELED"}
    assert stored(home, "error") == "registry refused token **** for ['cicd-busybox:latest']"
    assert files_containing(home, SECRET.encode()) == []
    flow_run_id = stored(home, "flow_run_id")
    assert flow_run_id is not None
    APILogWorker.drain_all(timeout=5)  # the flow's logs reach the Prefect API in batches
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(UUID(flow_run_id)).state
        logs = client.read_logs(
            LogFilter(flow_run_id=LogFilterFlowRunId(any_=[UUID(flow_run_id)]))
        )
    assert state is not None and state.is_failed()
    assert state.message == (
        "RuntimeError: registry refused token **** for ['cicd-busybox:latest']"
    )
    assert logs and not [log.message for log in logs if SECRET in log.message]


def test_start_secret_name_not_a_shell_name_is_a_usage_error(tmp_path: Path) -> None:
    prepared = prepare_run(
        cwd=make_repo(tmp_path / "repo"), cache_dir=tmp_path / "cache", secrets={"MY-TOKEN": "x"}
    )
    service = Service(Settings(home=tmp_path / "home"), runner=FakeRunner())

    with pytest.raises(UsageError) as raised:
        service.start(prepared.request, prepared.source)

    assert str(raised.value) == (
        "secret name 'MY-TOKEN' is not a shell variable name "
        "(letters, digits and _, not starting with a digit)"
    )
    assert service.pipelines().pipelines == []  # nothing recorded
