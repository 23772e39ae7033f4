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


# command -> (its module in cicd_cli, the function; None: the module's typer app, a group), in
# the order `cicd --help` lists them
_COMMANDS: dict[str, tuple[str, str | None]] = {
    "check": ("check", "check"),
    "dry-run": ("check", "dry_run"),
    "schema": ("schema", "schema"),
    "run": ("run", "run"),
    "retry": ("retry", "retry"),
    "server": ("server", "server"),
    "worker": ("worker", "worker"),
    "shutdown": ("shutdown", "shutdown"),
    "report": ("report", "report"),
    "logs": ("logs", "logs"),
    "status": ("report", "status"),
    "cancel": ("cancel", "cancel"),
    "artifacts": ("artifacts", "artifacts"),
    "gc": ("gc", "gc"),
    "debug": ("debug", "debug"),
    "cache": ("cache", None),
    "schedule": ("schedule", None),
}


def _register(only: str | None = None) -> None:
    """Register the commands: just ``only`` when it names one (only its module is imported,
    ~0.1 s less on every ``cicd run``), else all of them (for help and for a mistyped name)."""
    import importlib

    for name in [only] if only in _COMMANDS else list(_COMMANDS):
        module_name, function = _COMMANDS[name]
        module = importlib.import_module(f"cicd_cli.{module_name}")
        if function is None:
            app.add_typer(module.app, name=name)
        else:
            _command(name, getattr(module, function))


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

    _register(sys.argv[1] if len(sys.argv) > 1 else None)
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
