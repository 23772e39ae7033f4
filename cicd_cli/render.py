"""Rendering runs for people: live progress lines, summary tables, durations and colours."""

from __future__ import annotations

import io
import json
import threading
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from backend.recording import Event
from backend.schemas import (
    ArtifactPublic,
    JobRunPublic,
    PipelinesPublic,
    RunPublic,
    RunSummary,
    StageRunPublic,
    Status,
)
from cicd_cli.terminal import job_text, safe_text

if TYPE_CHECKING:
    from backend.service import RunRequest

STATUS_STYLE = {
    Status.PENDING: "dim",
    Status.RUNNING: "cyan",
    Status.SUCCESS: "green",
    Status.FAILED: "red",
    Status.CANCELED: "yellow",
    Status.SKIPPED: "bright_black",
    Status.MANUAL: "magenta",
    Status.REUSED: "green dim",
}
JOB_COLOURS = [
    "cyan",
    "magenta",
    "blue",
    "green",
    "yellow",
    "bright_cyan",
    "bright_magenta",
    "bright_blue",
    "bright_green",
    "bright_yellow",
]


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
        """Print one event; what a job wrote keeps its colours and loses every other control."""
        text: Text | None = None
        if event.kind == "line" and event.job:
            text = self._prefix(event.job) + job_text(event.text or "")
        elif event.kind == "job_started" and event.job:
            text = self._prefix(event.job) + Text(f"started ({event.stage})", style="dim")
        elif event.kind == "job_finished" and event.job:
            text = self._prefix(event.job) + status_text(event.status)
            if event.exit_code is not None:
                text += Text(f" (exit code {event.exit_code})", style="dim")
            reason = event.text or ""
            if event.status is Status.SKIPPED:  # "SKIPPED: build failed", not "skipped" twice
                reason = reason.removeprefix("skipped: ")
            if reason:
                text += Text(f": {safe_text(reason)}", style="dim")
        elif event.kind == "stage_started":
            text = Text(f"── stage {event.stage}", style="bold")
        elif event.kind == "warning":
            text = Text(f"warning: {safe_text(event.text or '')}", style="yellow")
        if text is not None:
            with self._lock:
                self.console.print(text, soft_wrap=True, highlight=False)


def summary_table(run: RunPublic) -> Table:
    """The table printed at the end of a run: job, stage, status, duration, exit code (peak
    memory and CPU time when a job's container was measured, and tests when a job left a
    JUnit report).
    """
    table = Table(title=f"{run.pipeline}#{run.run}", title_justify="left", show_edge=False)
    table.add_column("job")
    table.add_column("stage")
    table.add_column("status")
    table.add_column("duration", justify="right")
    table.add_column("exit code", justify="right")
    with_usage = _any_usage(run)
    if with_usage:
        table.add_column("memory", justify="right")
        table.add_column("cpu", justify="right")
    with_tests = _any_tests(run)
    if with_tests:
        table.add_column("tests")
    for stage in run.stages:
        for job in stage.jobs:
            row: list[str | Text] = [
                job.name,
                stage.name,
                job_status_text(job),
                duration(job.started_at, job.finished_at),
                "" if job.exit_code is None else str(job.exit_code),
            ]
            if with_usage:
                row += [memory_text(job.memory_peak_bytes), cpu_text(job.cpu_seconds)]
            if with_tests:
                row.append(job_tests_text(job))
            table.add_row(*row)
    return table


def memory_text(size: int | None) -> str:
    """A peak memory as ``105.2 MiB``; empty when not measured."""
    return "" if size is None else size_text(size)


def cpu_text(seconds: float | None) -> str:
    """CPU time as ``1.52s`` (``2m05s`` past a minute); empty when not measured."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


SHOWN_FAILED = 5  # failed test names in a job's line after the run


def tests_lines(run: RunPublic) -> list[Text]:
    """One line per job with JUnit results: ``unit: 120 passed, 2 failed: test_a, test_b``."""
    lines = []
    for stage in run.stages:
        for job in stage.jobs:
            junit = job.junit
            if junit is None:
                continue
            text = Text(f"{job.name}: ", style="bold") + Text(f"{junit.passed} passed")
            for count, word in ((junit.failed, "failed"), (junit.errors, "error")):
                if count:
                    plural = "s" if word == "error" and count != 1 else ""
                    text += Text(f", {count} {word}{plural}", style="red")
            if junit.skipped:
                text += Text(f", {junit.skipped} skipped", style="dim")
            names = junit.failed_names[:SHOWN_FAILED]
            if names:
                more = junit.failed + junit.errors - len(names)
                listed = ", ".join(safe_text(name) for name in names)
                text += Text(f": {listed}" + (f" and {more} more" if more > 0 else ""))
            lines.append(text)
    return lines


def _any_usage(run: RunPublic) -> bool:
    jobs = [job for stage in run.stages for job in stage.jobs]
    return any(job.memory_peak_bytes is not None or job.cpu_seconds is not None for job in jobs)


def job_tests_text(job: JobRunPublic) -> Text:
    """``12 tests, 1 failed`` (errors and skipped when there are any); empty without a report."""
    tests = job.tests
    if tests is None:
        return Text("")
    text = Text(f"{tests.total} test{'' if tests.total == 1 else 's'}")
    if tests.failed:
        text += Text(f", {tests.failed} failed", style="red")
    if tests.errors:
        text += Text(f", {tests.errors} error{'' if tests.errors == 1 else 's'}", style="red")
    if tests.skipped:
        text += Text(f", {tests.skipped} skipped", style="dim")
    return text


def _any_tests(run: RunPublic | StageRunPublic) -> bool:
    jobs = run.jobs if isinstance(run, StageRunPublic) else [j for s in run.stages for j in s.jobs]
    return any(job.tests is not None for job in jobs)


# -- history: reports, status, artifacts ------------------------------------------------------


class OutputFormat(StrEnum):
    """How a history command prints: tables for people, JSON or YAML for scripts."""

    TEXT = "text"
    JSON = "json"
    YAML = "yaml"


def dump(data: Any, fmt: OutputFormat) -> str:
    """``data`` (JSON-ready) as indented JSON or block YAML, keys in their given order."""
    if fmt is OutputFormat.YAML:
        from ruamel.yaml import YAML

        yaml = YAML(typ="safe", pure=True)
        yaml.default_flow_style = False
        # keep SPEC §3.1's key order (ruamel types this attribute as None)
        yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
        stream = io.StringIO()
        yaml.dump(data, stream)
        return stream.getvalue().rstrip("\n")
    return json.dumps(data, indent=2)


def when(at: datetime | None, now: datetime) -> str:
    """``42s ago``, ``5m ago``, ``3h ago`` within a day, else the local date and time."""
    if at is None:
        return ""
    at = _aware(at)
    seconds = (now - at).total_seconds()
    if 0 <= seconds < 60:
        return f"{int(seconds)}s ago"
    if 0 <= seconds < 3600:
        return f"{int(seconds // 60)}m ago"
    if 0 <= seconds < 86400:
        return f"{int(seconds // 3600)}h ago"
    return at.astimezone().strftime("%Y-%m-%d %H:%M")


def took(start: datetime | None, end: datetime | None, now: datetime) -> str:
    """How long something took, or has been running (``end`` unknown) until ``now``."""
    if start is None:
        return ""
    return duration(_aware(start), _aware(end) if end is not None else now)


def short_commit(commit: str | None) -> str:
    """The first 12 characters of a commit id, as ``cicd run`` shows it."""
    return (commit or "")[:12]


def size_text(size: int) -> str:
    """``512 B``, ``1.5 KiB``, ``3.2 MiB``, ``1.1 GiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def job_status_text(job: JobRunPublic) -> Text:
    """A job's status in its colour, ``FAILED (allowed)`` after an allowed failure."""
    text = status_text(job.status)
    if job.allowed and job.status is Status.FAILED:
        text += Text(" (allowed)", style="dim")
    if job.status is Status.REUSED and job.reused_from is not None:
        text += Text(f" (#{job.reused_from})", style="dim")
    return text


def pipelines_table(pipelines: PipelinesPublic, now: datetime) -> Table:
    """``cicd report``: one row per pipeline with its latest run."""
    table = _table("pipeline", "runs", "last run", "status", "started")
    for item in pipelines.pipelines:
        last = f"{item.pipeline}#{item.last_run}" if item.last_run is not None else ""
        table.add_row(
            item.pipeline,
            str(item.runs),
            last,
            status_text(item.last_status),
            when(item.last_started_at, now),
        )
    return table


def runs_table(runs: list[RunSummary], now: datetime) -> Table:
    """``cicd report -p NAME`` and ``cicd status``: one row per run."""
    table = _table("run", "status", "commit", "branch", "started", "duration", "worker")
    for run in runs:
        table.add_row(
            f"{run.pipeline}#{run.run}",
            status_text(run.status),
            short_commit(run.commit),
            run.branch or "",
            when(run.started_at, now),
            took(run.started_at, run.finished_at, now),
            run.worker or "",
        )
    return table


def run_header(run: RunSummary, now: datetime) -> Text:
    """Two lines about a run: name, status and duration; commit, branch, worker, start."""
    header = Text.assemble((f"{run.pipeline}#{run.run}", "bold"), "  ", status_text(run.status))
    spent = took(run.started_at, run.finished_at, now)
    if spent:
        header += Text(f"  {'running for' if run.finished_at is None else 'in'} {spent}")
    facts = [f"commit {short_commit(run.commit)}"]
    if run.branch:
        facts.append(f"on {run.branch}")
    if run.worker:
        facts.append(f"worker {run.worker}")
    if run.started_at is not None:
        facts.append(f"started {when(run.started_at, now)}")
    return header + Text("\n" + " · ".join(facts), style="dim")


def run_table(run: RunPublic, now: datetime) -> Table:
    """Every stage of a run, each followed by its jobs (indented), with statuses and times
    (memory and cpu columns when a job was measured, a tests column when one left a JUnit
    report).
    """
    with_tests = _any_tests(run)
    usage = ["memory", "cpu"] if _any_usage(run) else []
    table = _table(
        "stage / job",
        "status",
        "duration",
        "exit code",
        "image",
        *usage,
        *(["tests"] if with_tests else []),
    )
    for stage in run.stages:
        table.add_row(
            Text(stage.name, style="bold"),
            status_text(stage.status),
            took(stage.started_at, stage.finished_at, now),
            "",
            "",
            *[""] * len(usage),
            *([""] if with_tests else []),
        )
        for job in stage.jobs:
            used = [memory_text(job.memory_peak_bytes), cpu_text(job.cpu_seconds)] if usage else []
            table.add_row(
                f"  {job.name}",
                job_status_text(job),
                took(job.started_at, job.finished_at, now),
                "" if job.exit_code is None else str(job.exit_code),
                job.image,
                *used,
                *([job_tests_text(job)] if with_tests else []),
            )
    return table


def stage_table(stage: StageRunPublic, now: datetime) -> Table:
    """The jobs of one stage with statuses, times and images (and tests, as ``run_table``)."""
    with_tests = _any_tests(stage)
    table = _table(
        "job",
        "status",
        "duration",
        "exit code",
        "image",
        "started",
        *(["tests"] if with_tests else []),
    )
    for job in stage.jobs:
        table.add_row(
            job.name,
            job_status_text(job),
            took(job.started_at, job.finished_at, now),
            "" if job.exit_code is None else str(job.exit_code),
            job.image,
            when(job.started_at, now),
            *([job_tests_text(job)] if with_tests else []),
        )
    return table


def job_details(job: JobRunPublic, now: datetime) -> Table:
    """One job as ``field  value`` lines."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim")
    table.add_column()
    table.add_row("job", Text(job.name, style="bold"))
    table.add_row("status", job_status_text(job))
    table.add_row("exit code", "" if job.exit_code is None else str(job.exit_code))
    table.add_row("image", job.image)
    table.add_row("allow failure", "yes" if job.allow_failure else "no")
    table.add_row("started", _absolute(job.started_at))
    table.add_row("finished", _absolute(job.finished_at))
    table.add_row("duration", took(job.started_at, job.finished_at, now))
    if job.memory_peak_bytes is not None:
        table.add_row("peak memory", memory_text(job.memory_peak_bytes))
    if job.cpu_seconds is not None:
        table.add_row("cpu time", cpu_text(job.cpu_seconds))
    if job.needs is not None:
        table.add_row("needs", safe_text(", ".join(job.needs)) if job.needs else "(none)")
    if job.error:
        table.add_row("error", safe_text(job.error))
    if job.tests is not None:
        table.add_row("tests", job_tests_text(job))
        for name in job.tests.failed_names:  # names the job chose: no control reaches the terminal
            table.add_row("", Text(f"failed: {safe_text(name)}", style="red"))
    return table


def artifacts_table(artifacts: list[ArtifactPublic]) -> Table:
    """Artifacts of a run: job, path, size and the start of the sha256."""
    table = _table("job", "path", "size", "sha256")
    table.columns[2].justify = "right"
    for artifact in artifacts:
        # a path is a file name the job chose: no control sequence reaches the terminal
        table.add_row(
            artifact.job, safe_text(artifact.path), size_text(artifact.size), artifact.sha256[:12]
        )
    return table


def job_prefixes(console: Console, jobs: list[str]) -> dict[str, str]:
    """Each job's ``name | `` prefix as printed live, coloured when the console has colour."""
    width = max((len(job) for job in jobs), default=4)
    prefixes = {}
    for i, job in enumerate(jobs):
        with console.capture() as captured:
            console.print(
                Text(f"{job:<{width}} | ", style=JOB_COLOURS[i % len(JOB_COLOURS)]), end=""
            )
        prefixes[job] = captured.get()
    return prefixes


def _table(*columns: str) -> Table:
    table = Table(show_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _absolute(at: datetime | None) -> str:
    return "" if at is None else _aware(at).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def table_console() -> Console:
    """The console history tables print on: the terminal's width, or wide when piped.

    Piped output (``| grep``, ``| less``) has no width; rich's 80 columns would fold rows.
    """
    import os

    console = Console(highlight=False, markup=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 200
    return console


def submitted_line(name: str, request: RunRequest, duplicate: bool) -> Text:
    """The first line ``cicd run`` prints: the run's name, file, commit and branch."""
    short = request.commit[:12]
    where = f" on {request.branch}" if request.branch else ""
    if duplicate:
        return Text(
            f"{name} is already running (commit {short}{where}); use --force to start another"
        )
    return Text.assemble((name, "bold"), f"  {request.file} at {short}{where}")


def print_run_end(console: Console, run: RunPublic) -> int:
    """Print the summary table and the final line of a run; return ``cicd run``'s exit status."""
    console.print()
    console.print(summary_table(run))
    for line in tests_lines(run):
        console.print(line, soft_wrap=True)
    took = duration(run.started_at, run.finished_at)
    console.print(
        Text.assemble(
            (f"{run.pipeline}#{run.run}", "bold"), " ", status_text(run.status), f" in {took}"
        )
    )
    return 0 if run.status in (Status.SUCCESS, Status.SKIPPED) else 1
