"""``cicd shutdown``: stop the background processes of a ``CICD_HOME``."""

from __future__ import annotations

import os

import typer

from backend.settings import Settings


def shutdown() -> None:
    """Stop this CICD_HOME's background processes: the local daemon and the local Prefect server.

    `cicd run` starts both on first use and they keep running until they have been idle for
    30 minutes (CICD_IDLE_TIMEOUT; the Prefect server goes with an idle daemon) or until this
    command. Runs the daemon is executing are
    canceled and settled first. History, logs and artifacts stay; the next `cicd run` starts
    both again. A Prefect server given by PREFECT_API_URL is not cicd's and is left alone.
    Prints one line for each; exit status 0.
    """
    from backend.engines import read_local_prefect, stop_local_prefect
    from cicd_cli.daemon import locked, read_state, state_path, stop_daemon

    home = Settings().home
    state_file = state_path(home)
    with locked(state_file):  # no `cicd run` starts a daemon meanwhile
        info = read_state(state_file)
        if stop_daemon(home):
            typer.echo(f"daemon: stopped (pid {info['pid'] if info else '?'})")
        else:
            typer.echo("daemon: not running")
    if os.environ.get("PREFECT_API_URL"):
        typer.echo("Prefect server: not cicd's (PREFECT_API_URL), left running")
        return
    server = read_local_prefect(home)
    if server is not None and stop_local_prefect(home):
        typer.echo(f"Prefect server: stopped (pid {server['pid']}, {server['url']})")
    else:
        typer.echo("Prefect server: not running")
