"""What a job reports besides its status: ``artifacts: reports`` (JUnit test results, ...).

``reports: junit`` is read after the job whether it succeeded or failed (as GitLab uploads
reports whatever the job's result; a canceled job reports nothing). Its files are the job's
own, so they are hostile: only regular files inside the workspace are read (a symlink out of
it is refused), at most ``MAX_REPORT_FILES`` of them, each at most ``MAX_REPORT_BYTES``,
opened without following a link; ``backend.junit`` parses them without DTDs or entities. A
report that cannot be read is one warning line in the job's log; it never fails the job.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from backend.junit import JunitCounts, JunitError, parse_junit
from backend.pipeline.model import Job
from backend.schemas import JobTestsPublic, Status

if TYPE_CHECKING:
    from backend.execution import RunContext

MAX_REPORT_FILES = 100  # JUnit files read per job
MAX_REPORT_BYTES = 10 * 1024 * 1024  # per file
PREFIX = "cicd: junit report"


def collect_reports(
    ctx: RunContext, job: Job, workspace: Path, status: Status, line: Callable[[str], None]
) -> None:
    """Read and record the reports ``job`` left in ``workspace``."""
    patterns = job.artifacts_options.reports.get("junit", [])
    if not patterns or status not in (Status.SUCCESS, Status.FAILED):
        return
    counts = read_junit(workspace, patterns, line)
    if counts is None:
        return
    tests = JobTestsPublic(
        total=counts.total,
        failed=counts.failed,
        errors=counts.errors,
        skipped=counts.skipped,
        time=round(counts.time, 3),
        failed_names=counts.failed_names,
    )
    ctx.recorder.job_tests(job.name, tests, counts.cases)
    line(f"{PREFIX}: {summary(tests)}")


def summary(tests: JobTestsPublic) -> str:
    """``12 tests, 1 failed, 0 errors, 2 skipped``."""
    return (
        f"{tests.total} test{'' if tests.total == 1 else 's'}, {tests.failed} failed, "
        f"{tests.errors} error{'' if tests.errors == 1 else 's'}, {tests.skipped} skipped"
    )


def read_junit(
    workspace: Path, patterns: list[str], line: Callable[[str], None]
) -> JunitCounts | None:
    """The counts of every JUnit file ``patterns`` name in ``workspace``; None when none was read.

    Each file that cannot be read (missing, too big, a link out, not JUnit XML) is one warning
    line and is left out; the others still count.
    """
    from backend.runner.artifacts import ArtifactPatternError, match_artifacts

    found: list[str] = []
    for pattern in patterns:
        try:
            matched, warnings = match_artifacts(workspace, [pattern])
        except ArtifactPatternError as exc:
            line(f"{PREFIX}: warning: {exc}")
            continue
        for warning in warnings:
            line(f"{PREFIX}: warning: {warning.replace('artifact ', '', 1)}")
        found += [rel for rel in matched if rel not in found]
    if len(found) > MAX_REPORT_FILES:
        line(
            f"{PREFIX}: warning: {len(found)} files match; only the first "
            f"{MAX_REPORT_FILES} are read"
        )
        found = found[:MAX_REPORT_FILES]
    total: JunitCounts | None = None
    for rel in found:
        try:
            counts = parse_junit(_read(workspace, rel))
        except (JunitError, OSError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            line(f"{PREFIX}: warning: '{rel}' ignored: {reason}")
            continue
        if total is None:
            total = JunitCounts()
        total.add(counts)
    return total


def _read(workspace: Path, rel: str) -> bytes:
    """The bytes of regular file ``rel`` inside ``workspace``, at most ``MAX_REPORT_BYTES``.

    Raises ``JunitError`` for a link out of the workspace, a file that is not regular or one
    too big; ``OSError`` when it cannot be read.
    """
    root = workspace.resolve()
    path = (root / rel).resolve()
    if root not in path.parents:
        raise JunitError("it is a symlink out of the workspace")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise JunitError("it is not a regular file")
        if info.st_size > MAX_REPORT_BYTES:
            raise JunitError(f"it is larger than {MAX_REPORT_BYTES // (1024 * 1024)} MiB")
        data = handle.read(MAX_REPORT_BYTES + 1)
    if len(data) > MAX_REPORT_BYTES:  # it grew while being read
        raise JunitError(f"it is larger than {MAX_REPORT_BYTES // (1024 * 1024)} MiB")
    return data
