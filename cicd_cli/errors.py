"""The one way a command fails: a single line on stderr and an exit status."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

from cicd_cli.terminal import safe_text

err_console = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def abort(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """Print ``message`` on stderr as ``error: ...`` lines and exit with ``code``."""
    for line in message.splitlines() or [""]:
        err_console.print(f"error: {safe_text(line)}", markup=False)
    raise typer.Exit(code)
