"""``cicd cancel``: stop a pending or running run."""

from __future__ import annotations

import typer

from backend.client import open_backend
from backend.runs import RunRef
from backend.schemas import Status
from backend.settings import Settings


def cancel(
    run_name: str = typer.Argument(..., metavar="NAME#N", help="The run to cancel, e.g. build#3."),
    server: str | None = typer.Option(
        None,
        "--server",
        envvar="CICD_SERVER",
        help="Ask this cicd server instead of the local one.",
    ),
) -> None:
    """Cancel a pending or running run: its running jobs are stopped, the rest marked CANCELED.

    Prints `NAME#N: cancel requested` while the run is being stopped, `NAME#N: canceled` when it
    is already settled, or `NAME#N already finished (STATUS)` when there was nothing to cancel
    (exit status 0 in each case; 1 when there is no such run).
    """
    pipeline, number = RunRef.parse(run_name)
    name = f"{pipeline}#{number}"
    backend = open_backend(Settings(), server)
    before = backend.run(pipeline, number).status
    if before.finished:  # do not reach for Prefect when there is nothing to stop
        typer.echo(f"{name} already finished ({before.value})")
        return
    after = backend.cancel(pipeline, number)
    if after is Status.CANCELED:
        typer.echo(f"{name}: canceled")
    elif after.finished:  # it ended by itself meanwhile
        typer.echo(f"{name} already finished ({after.value})")
    else:
        typer.echo(f"{name}: cancel requested")
