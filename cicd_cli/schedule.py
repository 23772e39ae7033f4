"""``cicd schedule add|list|remove``: pipelines run on a cron schedule (Prefect deployments)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from backend.settings import Settings
from cicd_cli.render import OutputFormat, dump, table_console
from cicd_cli.terminal import safe_text

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def _help(function: Callable[..., Any]) -> str:
    """``function``'s docstring, each paragraph on one line (the terminal wraps it)."""
    doc = inspect.cleandoc(function.__doc__ or "")
    return "\n\n".join(" ".join(part.split("\n")) for part in doc.split("\n\n"))


def _prefect() -> None:
    """Point this process at PREFECT_API_URL, or at the local Prefect server of CICD_HOME."""
    from backend.engines import use_prefect

    use_prefect(Settings().home)


def schedule() -> None:
    """Run pipelines on a cron schedule: Prefect deployments that `cicd worker` executes.

    Each schedule shows in the Prefect UI as a deployment of the flow cicd-deployment; its runs
    get CI_PIPELINE_SOURCE=schedule. Start `cicd worker --pool POOL` on the machines that should
    run them.
    """


def add(
    name: str = typer.Argument(..., help="The schedule's name (letters, digits, '.', '_', '-')."),
    cron: str = typer.Option(
        ..., "--cron", help="When it runs: a cron expression, e.g. '0 3 * * *' (03:00 daily)."
    ),
    repo: str = typer.Option(
        ..., "--repo", help="The repository's URL (or a path every worker can read)."
    ),
    branch: str | None = typer.Option(
        None, "--branch", help="Run the tip of this branch (default: the repository's HEAD)."
    ),
    pipeline: str | None = typer.Option(
        None, "-p", "--pipeline", help="Run the .pipelines/ file of this pipeline name."
    ),
    pool: str = typer.Option("cicd", "--pool", help="The work pool whose workers run it."),
    timezone: str = typer.Option("UTC", "--timezone", help="The cron's time zone (IANA name)."),
) -> None:
    """Add a schedule: run a repository's pipeline whenever the cron expression says.

    The cron expression is checked before anything is created; a schedule of the same name
    must be removed first.
    """
    from backend import schedules

    schedules.check_name(name)
    schedules.cron_schedule(cron, timezone)
    where = schedules.check_repo(repo, Path.cwd())
    _prefect()
    made = schedules.add(
        name, cron=cron, repo=where, branch=branch, pipeline=pipeline, pool=pool,
        timezone=timezone,
    )
    typer.echo(f"added schedule '{made.name}': {made.cron} ({made.timezone}) on pool {pool}")


def list_schedules(
    fmt: OutputFormat = typer.Option(
        OutputFormat.TEXT, "--format", help="How to list them: text, json or yaml."
    ),
) -> None:
    """List the schedules: name, cron, repository, branch, pipeline, pool and next run.

    --format json prints {"schedules": [{"name", "cron", "timezone", "repo", "branch",
    "pipeline", "pool", "active", "next_run"}, ...]}.
    """
    from backend import schedules

    _prefect()
    found = schedules.list_schedules()
    if fmt is not OutputFormat.TEXT:
        typer.echo(dump({"schedules": [s.as_json() for s in found]}, fmt))
        return
    if not found:
        typer.echo("no schedules")
        return
    now = datetime.now(UTC)
    table = Table(box=None, pad_edge=False)
    for column in ("NAME", "CRON", "REPO", "BRANCH", "PIPELINE", "POOL", "NEXT RUN"):
        table.add_column(column, overflow="fold")
    for s in found:
        upcoming = ""
        if s.next_run is not None:
            minutes = max(0, int((s.next_run - now).total_seconds() // 60))
            upcoming = f"{s.next_run.astimezone(UTC):%Y-%m-%d %H:%M} UTC (in {minutes} min)"
        table.add_row(
            safe_text(s.name), safe_text(f"{s.cron} {s.timezone}"), safe_text(s.repo),
            safe_text(s.branch or ""), safe_text(s.pipeline or ""), safe_text(s.pool or ""),
            upcoming if s.active else "paused",
        )
    table_console().print(table)


def remove(name: str = typer.Argument(..., help="The schedule to remove.")) -> None:
    """Remove a schedule; its runs not started yet are removed with it."""
    from backend import schedules

    schedules.check_name(name)
    _prefect()
    schedules.remove(name)
    typer.echo(f"removed schedule '{name}'")


app.callback(help=_help(schedule))(schedule)
app.command("add", help=_help(add))(add)
app.command("list", help=_help(list_schedules))(list_schedules)
app.command("remove", help=_help(remove))(remove)
