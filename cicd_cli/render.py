"""Rendering runs for people: live progress lines, summary tables, durations and colours."""

from __future__ import annotations

import threading
from datetime import datetime

from rich.console import Console
from rich.table import Table
from rich.text import Text

from backend.recording import Event
from backend.schemas import RunPublic, Status

STATUS_STYLE = {
    Status.PENDING: "dim",
    Status.RUNNING: "cyan",
    Status.SUCCESS: "green",
    Status.FAILED: "red",
    Status.CANCELED: "yellow",
}
JOB_COLOURS = ["cyan", "magenta", "blue", "green", "yellow", "bright_cyan", "bright_magenta",
               "bright_blue", "bright_green", "bright_yellow"]


def duration(start: datetime | None, end: datetime | None) -> str:
    """``1.23s``, ``2m05s`` or ``1h02m``; empty when unknown."""
    if start is None or end is None:
        return ""
    seconds = max(0.0, (end - start).total_seconds())
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def status_text(status: Status | None) -> Text:
    """A status word in its colour."""
    if status is None:
        return Text("")
    return Text(status.value, style=STATUS_STYLE[status])


class LivePrinter:
    """Prints a run's events as they happen: job logs prefixed with the job's coloured name."""

    def __init__(self, console: Console, jobs: list[str]) -> None:
        self.console = console
        self.width = max((len(job) for job in jobs), default=4)
        self.colours = {job: JOB_COLOURS[i % len(JOB_COLOURS)] for i, job in enumerate(jobs)}
        self._lock = threading.Lock()

    def _prefix(self, job: str) -> Text:
        return Text(f"{job:<{self.width}} | ", style=self.colours.get(job, "white"))

    def __call__(self, event: Event) -> None:
        """Print one event."""
        text: Text | None = None
        if event.kind == "line" and event.job:
            text = self._prefix(event.job) + Text(event.text or "")
        elif event.kind == "job_started" and event.job:
            text = self._prefix(event.job) + Text(f"started ({event.stage})", style="dim")
        elif event.kind == "job_finished" and event.job:
            text = self._prefix(event.job) + status_text(event.status)
            if event.exit_code is not None:
                text += Text(f" (exit code {event.exit_code})", style="dim")
            if event.text:
                text += Text(f": {event.text}", style="dim")
        elif event.kind == "stage_started":
            text = Text(f"── stage {event.stage}", style="bold")
        elif event.kind == "warning":
            text = Text(f"warning: {event.text}", style="yellow")
        if text is not None:
            with self._lock:
                self.console.print(text, soft_wrap=True, highlight=False)


def summary_table(run: RunPublic) -> Table:
    """The table printed at the end of a run: job, stage, status, duration, exit code."""
    table = Table(title=f"{run.pipeline}#{run.run}", title_justify="left", show_edge=False)
    table.add_column("job")
    table.add_column("stage")
    table.add_column("status")
    table.add_column("duration", justify="right")
    table.add_column("exit code", justify="right")
    for stage in run.stages:
        for job in stage.jobs:
            status = status_text(job.status)
            if job.allow_failure and job.status is Status.FAILED:
                status += Text(" (allowed)", style="dim")
            table.add_row(
                job.name, stage.name, status, duration(job.started_at, job.finished_at),
                "" if job.exit_code is None else str(job.exit_code),
            )
    return table
