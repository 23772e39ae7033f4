"""``cache:``: paths kept between runs under a key, in ``CICD_HOME/cache``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from backend.pipeline.model import Job
from backend.schemas import Status

if TYPE_CHECKING:
    from backend.execution import RunContext


def restore_caches(ctx: RunContext, job: Job, workspace: Path, line: Callable[[str], None]) -> None:
    """Put ``job``'s caches into ``workspace`` before it runs."""


def save_caches(
    ctx: RunContext, job: Job, workspace: Path, status: Status, line: Callable[[str], None]
) -> None:
    """Save ``job``'s cached paths from ``workspace`` after it ran."""
