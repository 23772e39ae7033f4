"""What a job reports besides its status: ``artifacts: reports`` (JUnit test results, ...)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from backend.pipeline.model import Job
from backend.schemas import Status

if TYPE_CHECKING:
    from backend.execution import RunContext


def collect_reports(
    ctx: RunContext, job: Job, workspace: Path, status: Status, line: Callable[[str], None]
) -> None:
    """Read and record the reports ``job`` left in ``workspace``."""
