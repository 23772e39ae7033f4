"""``cicd report`` and ``cicd status``: the history of runs, and the state of runs going on now."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import typer
from rich.console import Group, RenderableType
from rich.text import Text

from backend.client import Backend, open_backend
from backend.errors import NotFound, UsageError
from backend.runs import RunRef
from backend.schemas import RunPublic, RunSummary, Status
from backend.settings import Settings
from backend.timeline import Timeline
from cicd_cli.render import (
    STATUS_STYLE,
    OutputFormat,
    dump,
    job_details,
    pipelines_table,
    run_header,
    run_table,
    runs_table,
    stage_table,
    status_text,
    table_console,
    took,
)
from cicd_cli.terminal import safe_text

FORMAT_HELP = "Output format: text (tables) for people, json or yaml for scripts."
REPORT_FORMAT_HELP = (
    "Output format: text (tables) for people, json or yaml for scripts; svg: a picture of one "
    "run's jobs on a time axis (cicd report NAME#N --format svg > run.svg)."
)
SERVER_HELP = "Ask this cicd server instead of the local history."
FLAKY_LAST = 50  # runs --flaky looks at by default
FLAKY_MAX = 1000


class ReportFormat(StrEnum):
    """How ``cicd report`` prints: the history formats, and svg for one run's picture."""

    TEXT = "text"
    JSON = "json"
    YAML = "yaml"
    SVG = "svg"


def report(
    run_name: str | None = typer.Argument(
        None,
        metavar="NAME#N",
        help="The run to report on, e.g. build#3: the same as -p build --run 3.",
    ),
    pipeline: str | None = typer.Option(
        None, "-p", "--pipeline", help="Report on the runs of this pipeline."
    ),
    run: int | None = typer.Option(
        None, "--run", min=1, help="Report on run N of the pipeline (needs -p)."
    ),
    stage: str | None = typer.Option(
        None, "--stage", help="Only this stage of the run (needs --run)."
    ),
    job: str | None = typer.Option(
        None, "--job", help="Only this job of the run, in whichever stage it is (needs --run)."
    ),
    limit: int | None = typer.Option(
        None, "--limit", min=1, help="At most N pipelines or runs (the newest runs first)."
    ),
    status_filter: Status | None = typer.Option(
        None, "--status", case_sensitive=False, help="Only runs in this status."
    ),
    branch: str | None = typer.Option(None, "--branch", help="Only runs of this branch."),
    since: str | None = typer.Option(
        None, "--since", help="Only runs submitted since: an ISO 8601 time or an age (30m, 2h, 7d)."
    ),
    graph: bool = typer.Option(
        False,
        "--graph",
        help="Draw the run's jobs on a time axis, stage by stage, with the time each waited for "
        "its needs, and name its critical path (json/yaml: the same data).",
    ),
    flaky: bool = typer.Option(
        False,
        "--flaky",
        help="The pipeline's flaky tests (needs -p): tests that both passed and failed on the "
        "same commit, or flipped between runs.",
    ),
    last: int | None = typer.Option(
        None,
        "--last",
        min=1,
        max=FLAKY_MAX,
        help=f"With --flaky: look at the last N runs (default {FLAKY_LAST}).",
        show_default=False,
    ),
    fmt: ReportFormat = typer.Option(ReportFormat.TEXT, "--format", help=REPORT_FORMAT_HELP),
    server: str | None = typer.Option(None, "--server", envvar="CICD_SERVER", help=SERVER_HELP),
) -> None:
    """Show the history: every pipeline, the runs of one, one run, or one stage or job of a run.

    A run is named NAME#N or -p NAME --run N. --graph draws its jobs on a time axis with the
    time each waited for its needs, and a line naming the critical path (the chain of jobs that
    set the run's wall time); --format svg prints that picture as SVG. --flaky (with -p) lists
    the tests that both passed and failed on one commit, or flipped between runs, over the last
    runs (--last N, default 50).

    --status, --branch and --since list runs (of -p NAME, else of every pipeline) that match;
    --limit N shows at most N pipelines or runs.

    Without options: one line per pipeline with its latest run. With -p NAME: its runs, newest
    first. With --run N: that run's stages and jobs. --stage S and --job J narrow it to one stage
    or one job (both together: job J, which must be in stage S). --format json prints the stable
    objects scripts rely on, the same as the API's; yaml the same data.
    """
    if run_name is not None:
        named = RunRef.parse(run_name)
        if (pipeline is not None and pipeline != named.pipeline) or (
            run is not None and run != named.number
        ):
            raise UsageError(f"{named} and -p/--run name different runs: give one of them")
        pipeline, run = named
    if last is not None and not flaky:
        raise UsageError("--last goes with --flaky")
    if flaky:
        _flaky(pipeline, run, stage, job, graph, last, fmt, server)
        return
    if run is not None and pipeline is None:
        raise UsageError("--run needs -p/--pipeline")
    if (graph or fmt is ReportFormat.SVG) and (run is None or stage or job):
        what = "--graph" if graph else "--format svg"
        raise UsageError(f"{what} draws one whole run: give NAME#N or -p NAME --run N")
    if (stage is not None or job is not None) and run is None:
        raise UsageError(f"{'--stage' if stage is not None else '--job'} needs --run")
    filtered = status_filter is not None or branch is not None or since is not None
    if filtered and run is not None:
        raise UsageError("--status, --branch and --since list runs: they do not go with --run")
    filters = {"status": status_filter, "branch": branch, "since": _since(since, datetime.now(UTC))}
    backend = open_backend(Settings(), server)
    now = datetime.now(UTC)
    if graph or fmt is ReportFormat.SVG:
        assert pipeline is not None and run is not None  # checked above
        _graph(backend.run(pipeline, run), fmt, now)
        return
    data: Any
    view: RenderableType
    if pipeline is None and not filtered:
        pipelines = backend.pipelines(limit)
        data = pipelines.model_dump(mode="json", exclude={"next"})
        view = pipelines_table(pipelines, now) if pipelines.pipelines else Text("no runs yet")
    elif run is None:
        runs = backend.runs(pipeline, limit, **filters)
        data = runs.model_dump(mode="json", exclude={"next"})
        view = runs_table(runs.runs, now) if runs.runs else Text("no runs match")
    else:
        assert pipeline is not None  # --run needs -p (checked above)
        if stage is not None or job is not None:
            data, view = _narrowed(backend, pipeline, run, stage, job, now)
        else:
            one = backend.run(pipeline, run)
            data = one.model_dump(mode="json")
            view = Group(run_header(one, now), Text(""), run_table(one, now))
    _show(data, view, OutputFormat(fmt.value))


def _flaky(
    pipeline: str | None,
    run: int | None,
    stage: str | None,
    job: str | None,
    graph: bool,
    last: int | None,
    fmt: ReportFormat,
    server: str | None,
) -> None:
    """``--flaky``: the flaky tests of ``pipeline`` over its last runs."""
    if pipeline is None or run is not None or stage or job or graph:
        raise UsageError("--flaky lists the tests of one pipeline: give -p NAME (no run)")
    if fmt is ReportFormat.SVG:
        raise UsageError("--flaky prints text, json or yaml, not svg")
    try:
        from cicd_cli.flaky import show_flaky  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ModuleNotFoundError as exc:
        if exc.name != "cicd_cli.flaky":
            raise
        raise UsageError("--flaky is not available in this version of cicd") from None

    backend = open_backend(Settings(), server)
    show_flaky(backend, pipeline, last or FLAKY_LAST, OutputFormat(fmt.value))


def _graph(run: RunPublic, fmt: ReportFormat, now: datetime) -> None:
    """``--graph`` and ``--format svg``: the run's jobs on a time axis (up to now, while it
    runs)."""
    from backend.timeline import build_timeline
    from backend.timeline_render import to_svg

    timeline = build_timeline(run, now=now)
    if fmt is ReportFormat.SVG:
        typer.echo(to_svg(timeline), nl=False)
    elif fmt is ReportFormat.TEXT:
        console = table_console()
        console.print(graph_view(timeline, console.width), soft_wrap=True)
    else:
        typer.echo(dump(timeline.to_dict(), OutputFormat(fmt.value)))


_CHART_STYLE = {
    "title": "bold",
    "axis": "dim",
    "stage": "bold",
    "label": "",
    "wait": "dim",
    "note": "dim",
    "critical": "bold red",
}


def graph_view(timeline: Timeline, width: int) -> Text:
    """The run's Gantt chart for the terminal: bars coloured by status, the critical path red."""
    from backend.timeline_render import chart_lines

    label_width = max(8, min(24, max((len(bar.job) for bar in timeline.bars), default=8)))
    chart_width = max(20, min(80, width - label_width - 2 - 42))
    out = Text()
    for number, line in enumerate(chart_lines(timeline, chart_width, label_width)):
        if number:
            out.append("\n")
        for text, kind in line:
            style = _CHART_STYLE.get(kind, "")
            if kind.startswith("run:"):  # a bar off the critical path: its status' colour
                style = STATUS_STYLE.get(Status(kind.removeprefix("run:")), "")
            out.append(safe_text(text), style=style)
    return out


_AGE = re.compile(r"(\d{1,9})([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _since(text: str | None, now: datetime) -> datetime | None:
    """``--since``: an ISO 8601 time (UTC when it has no offset) or an age before ``now``."""
    if text is None:
        return None
    age = _AGE.fullmatch(text.strip())
    if age is not None:
        return now - timedelta(seconds=int(age[1]) * _UNIT_SECONDS[age[2]])
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--since {text!r}: expected an ISO 8601 time (2026-01-31T12:00) or an age "
            "(30m, 2h, 7d)"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _narrowed(
    backend: Backend,
    pipeline: str,
    number: int,
    stage: str | None,
    job: str | None,
    now: datetime,
) -> tuple[Any, RenderableType]:
    """One stage or one job of a run: its JSON-ready data and its view."""
    name = f"{pipeline}#{number}"
    if stage is not None:
        found = backend.stage(pipeline, number, stage)
        if job is None:
            header = Text.assemble(
                (name, "bold"), f"  stage {found.name}  ", status_text(found.status)
            )
            spent = took(found.started_at, found.finished_at, now)
            if spent:
                header += Text(f"  {spent}")
            data = found.model_dump(mode="json")
            return data, Group(header, Text(""), stage_table(found, now))
        matches = [j for j in found.jobs if j.name == job]
        if not matches:
            raise NotFound(f"no job '{job}' in stage '{stage}' of run '{name}'")
        one = matches[0]
    else:
        assert job is not None
        one = backend.job(pipeline, number, job)
    return one.model_dump(mode="json"), Group(Text(name, style="bold"), job_details(one, now))


def status(
    run_name: str | None = typer.Argument(
        None,
        metavar="[NAME#N]",
        help="The run to show, e.g. build#3 (default: every run in progress).",
    ),
    fmt: OutputFormat = typer.Option(OutputFormat.TEXT, "--format", help=FORMAT_HELP),
    server: str | None = typer.Option(None, "--server", envvar="CICD_SERVER", help=SERVER_HELP),
) -> None:
    """Show what is going on: the runs in progress, or the live state of one run.

    Without an argument: every PENDING or RUNNING run (json: {"runs": [...]}, run objects
    without stages). With NAME#N: that run's stages and jobs with their statuses, running ones
    with the time they have been running (json: the run object of `cicd report --run`).
    """
    target = RunRef.parse(run_name) if run_name is not None else None
    backend = open_backend(Settings(), server)
    now = datetime.now(UTC)
    data: Any
    view: RenderableType
    if target is not None:
        one = backend.run(*target)
        data = one.model_dump(mode="json")
        view = Group(run_header(one, now), Text(""), run_table(one, now))
    else:
        active = _active_runs(backend)
        data = {"runs": [r.model_dump(mode="json") for r in active]}
        view = runs_table(active, now) if active else Text("no runs in progress")
    _show(data, view, fmt)


def _active_runs(backend: Backend) -> list[RunSummary]:
    """Every PENDING or RUNNING run, the most recently started first."""
    active: list[RunSummary] = []
    for item in backend.pipelines().pipelines:
        try:
            runs = backend.runs(item.pipeline).runs
        except NotFound:  # its runs went away between the two questions
            continue
        active.extend(r for r in runs if not r.status.finished)
    never = datetime.min.replace(tzinfo=UTC)
    return sorted(
        active,
        key=lambda r: (
            r.started_at.replace(tzinfo=r.started_at.tzinfo or UTC) if r.started_at else never,
            r.pipeline,
            r.run,
        ),
        reverse=True,
    )


def _show(data: Any, view: RenderableType, fmt: OutputFormat) -> None:
    """Print ``data`` as JSON or YAML, or ``view`` for people."""
    if fmt is OutputFormat.TEXT:
        table_console().print(view)
    else:
        typer.echo(dump(data, fmt))
