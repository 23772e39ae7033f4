"""``cicd debug NAME#N --job J``: a shell in a failed job's container as it ended."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

import typer

from backend.errors import UsageError
from backend.masking import MASK
from backend.runs import RunRef
from backend.settings import Settings
from cicd_cli.errors import err_console
from cicd_cli.terminal import safe_text


def debug(
    run_name: str = typer.Argument(..., metavar="NAME#N", help="The run, e.g. build#3."),
    job: str = typer.Option(..., "--job", "-j", help="The failed job to open a shell in."),
    command: str | None = typer.Option(
        None,
        "--command",
        "-c",
        metavar="CMD",
        help="Run `sh -c CMD` in the job's start directory instead of a shell, without a "
        "terminal; print its output and exit with its exit code.",
    ),
    secret: list[str] = typer.Option(
        [],
        "--secret",
        metavar="NAME",
        help="Give the job's secret NAME again, from your environment (as `cicd run --secret`);"
        " secrets not given are ****.",
    ),
) -> None:
    """Open a shell in a failed job's container, its files as they were when the job ended.

    The shell starts in the job's start directory (/workspace) with a copy of its workspace, what
    it changed elsewhere in its container (/tmp, installed packages) and its variables. Secret
    values are never kept: pass them again with --secret NAME. Everything the shell changes is
    thrown away when it exits: the container and the copy are removed.

    By default the last failed job of each pipeline is kept (for 7 days, 20 per CICD_HOME); `cicd
    run --keep-failed` keeps every failed job of a run; `cicd gc` removes them. Works on the
    machine that ran the job (its Docker engine), not through a server (CICD_SERVER).

    Exit status: the shell's, or the command's.
    """
    from backend.debug_session import docker_cli, locate, open_session
    from backend.requests import read_secrets

    ref = RunRef.parse(run_name)
    settings = Settings()
    record = locate(settings, ref.pipeline, ref.number, job)
    given = read_secrets(secret)
    shell = None
    if command is None:
        if not sys.stdin.isatty():
            raise UsageError("cicd debug needs a terminal for its shell; use --command CMD")
        shell = docker_cli()
    for name in record.secrets:
        if name not in given:
            err_console.print(
                f"secret {name} is {MASK} here: give it again with --secret {name}", markup=False
            )
    # SIGTERM and SIGHUP (the terminal closed) remove the session too, as Ctrl-C does
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        with open_session(settings.debug_dir, record, given) as session:
            if shell is None:
                code = session.run(command or "")
            else:
                err_console.print(
                    f"{safe_text(run_name)} {safe_text(job)}: the job's files as it ended; "
                    "exit the shell to throw away the container and its changes",
                    markup=False,
                )
                code = subprocess.call(session.shell_argv(shell), env={**os.environ, **given})
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    raise typer.Exit(code)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
