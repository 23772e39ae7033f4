"""The ``cicd`` typer application: commands are registered here, implemented in their modules."""

from __future__ import annotations

import atexit
import inspect
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, NoReturn

import typer

from cicd_cli import __version__
from cicd_cli.errors import EXIT_FAILED, EXIT_USAGE, err_console
from cicd_cli.terminal import safe_text

app = typer.Typer(
    name="cicd",
    help="Run CI/CD pipelines from .pipelines/*.yaml: each job in its own Docker container.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cicd {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Run CI/CD pipelines from .pipelines/*.yaml: each job in its own Docker container."""


def _command(name: str, function: Callable[..., Any]) -> None:
    """Register ``function`` as command ``name``, its docstring as the help.

    Each paragraph of the docstring goes on one line so the terminal wraps it: typer keeps
    single line breaks, which break sentences mid-line in a terminal narrower than the source.
    """
    doc = inspect.cleandoc(function.__doc__ or "")
    help_text = "\n\n".join(" ".join(part.split("\n")) for part in doc.split("\n\n"))
    app.command(name, help=help_text)(function)


def _register() -> None:
    from cicd_cli import check

    _command("check", check.check)
    _command("dry-run", check.dry_run)
    from cicd_cli import schema

    _command("schema", schema.schema)
    from cicd_cli import run

    _command("run", run.run)
    from cicd_cli import retry

    _command("retry", retry.retry)
    from cicd_cli import server

    _command("server", server.server)
    from cicd_cli import shutdown, worker

    _command("worker", worker.worker)
    _command("shutdown", shutdown.shutdown)
    from cicd_cli import artifacts, cancel, logs, report

    _command("report", report.report)
    _command("logs", logs.logs)
    _command("status", report.status)
    _command("cancel", cancel.cancel)
    _command("artifacts", artifacts.artifacts)
    from cicd_cli import gc

    _command("gc", gc.gc)
    from cicd_cli import debug

    _command("debug", debug.debug)
    from cicd_cli import cache

    app.add_typer(cache.app, name="cache")
    from cicd_cli import schedule

    app.add_typer(schedule.app, name="schedule")


def main() -> None:
    """Entry point of the ``cicd`` console script: one-line errors, never a traceback."""
    try:
        _dispatch()
    except SystemExit as exc:
        _exit(exc.code)


def _exit(code: int | str | None) -> NoReturn:
    """Exit with ``code``, skipping the interpreter's teardown when nothing needs it.

    Freeing every module of the light client (typer, rich, pydantic, httpx) takes ~0.1 s after
    the last line is printed, on every command. When no other thread is running and Prefect is
    not loaded (its exit hooks send the last logs and states to its API), the exit hooks run,
    the output is flushed and the process ends at once: the OS reclaims the rest anyway.
    """
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if isinstance(code, str) or "prefect" in sys.modules or any(not t.daemon for t in others):
        sys.exit(code)
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # e.g. a closed pipe: let Python report it as usual
        sys.exit(code)
    os._exit(code or 0)


def _dispatch() -> None:
    try:  # typer >= 0.29 bundles its own click
        from typer._click.exceptions import ClickException
        from typer._click.exceptions import UsageError as ClickUsageError
    except ImportError:  # pragma: no cover - older typer on the real click
        from click.exceptions import ClickException  # type: ignore[assignment]
        from click.exceptions import UsageError as ClickUsageError  # type: ignore[assignment]

    from backend.errors import CicdError, PipelineInvalid, UsageError

    _register()
    try:
        sys.exit(app(standalone_mode=False) or 0)  # a typer.Exit(code) comes back as the value
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted", markup=False)
        sys.exit(130)
    except ClickException as exc:  # typer bundles its own click: bad options and arguments
        exc.show()
        sys.exit(EXIT_USAGE if isinstance(exc, ClickUsageError) else exc.exit_code)
    except PipelineInvalid as exc:  # positioned problems are printed as they are
        if os.environ.get("CICD_DEBUG") == "1":
            raise
        for problem in exc.problems:  # a name in a message never reaches the terminal raw
            err_console.print(safe_text(str(problem)), markup=False)
        sys.exit(EXIT_FAILED)
    except UsageError as exc:
        if os.environ.get("CICD_DEBUG") == "1":
            raise
        err_console.print(f"error: {safe_text(str(exc))}", markup=False)
        sys.exit(EXIT_USAGE)
    except CicdError as exc:
        if os.environ.get("CICD_DEBUG") == "1":
            raise
        for line in str(exc).splitlines():
            err_console.print(f"error: {safe_text(line)}", markup=False)
        sys.exit(EXIT_FAILED)
    except Exception as exc:  # the last line of defence: one line, never a traceback
        if os.environ.get("CICD_DEBUG") == "1":
            raise
        err_console.print(
            f"error: internal error: {type(exc).__name__}: {exc}"
            " (set CICD_DEBUG=1 for a traceback)",
            markup=False,
        )
        sys.exit(EXIT_FAILED)
