"""``cicd report -p NAME --flaky``: tests that both passed and failed in a pipeline's last runs."""

from __future__ import annotations

import typer
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from backend.client import Backend
from backend.schemas import FlakyTestsPublic
from cicd_cli.render import OutputFormat, dump, short_commit, table_console
from cicd_cli.terminal import safe_text


def show_flaky(backend: Backend, pipeline: str, last: int, fmt: OutputFormat) -> None:
    """Print the flaky tests of ``pipeline`` over its ``last`` newest runs: a table for
    people, or the API's object as JSON or YAML."""
    found = backend.flaky(pipeline, last)
    if fmt is OutputFormat.TEXT:
        table_console().print(flaky_view(found))
    else:
        typer.echo(dump(found.model_dump(mode="json"), fmt))


def flaky_view(found: FlakyTestsPublic) -> RenderableType:
    """A line saying what was looked at, then one row per flaky test (or that there are none)."""
    runs = f"{found.runs} run{'' if found.runs == 1 else 's'}"
    head = Text(f"{found.pipeline}: flaky tests over the last {runs}", style="bold")
    if not found.tests:
        return Group(head, Text("no flaky tests: none both passed and failed"))
    table = Table(show_edge=False, header_style="bold")
    for column in ("job", "test", "passed", "failed", "flips", "same commit", "last"):
        table.add_column(column, overflow="fold")
    for test in found.tests:
        # names come from the jobs' reports: no control sequence reaches the terminal
        table.add_row(
            safe_text(test.job),
            safe_text(test.name),
            str(test.passed),
            Text(str(test.failed), style="red"),
            str(test.flips),
            ", ".join(short_commit(commit) for commit in test.same_commit),
            f"#{test.last_run} {test.last_outcome}",
        )
    return Group(head, table)
