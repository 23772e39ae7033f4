"""``cicd cache list|clear``: the ``cache:`` archives kept on this machine (``CICD_HOME/cache``)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import typer
from rich.table import Table

from backend.settings import Settings
from cicd_cli.errors import abort
from cicd_cli.render import OutputFormat, dump, size_text, table_console, when
from cicd_cli.terminal import safe_text

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def _help(function: Callable[..., Any]) -> str:
    """``function``'s docstring, each paragraph on one line (the terminal wraps it)."""
    doc = inspect.cleandoc(function.__doc__ or "")
    return "\n\n".join(" ".join(part.split("\n")) for part in doc.split("\n\n"))


def cache() -> None:
    """List or clear the caches jobs keep between runs (cache:), on this machine.

    Caches live in CICD_HOME/cache, one archive per key: they belong to this machine's
    CICD_HOME, not to a server's (run `cicd cache` where the jobs run).
    """


def list_caches(
    fmt: OutputFormat = typer.Option(
        OutputFormat.TEXT, "--format", help="How to list them: text, json or yaml."
    ),
) -> None:
    """List the caches: key, size, when saved and last restored, the run and job that saved it.

    --format json prints {"caches": [{"key", "size", "saved_at", "last_used", "pipeline",
    "run", "job"}, ...]} (times in ISO 8601; last_used is null until it is restored).
    """
    from backend.cache_store import CacheStore

    entries = CacheStore(Settings().cache_dir).entries()
    if fmt is not OutputFormat.TEXT:
        data = {
            "caches": [
                {
                    "key": e.key,
                    "size": e.size,
                    "saved_at": e.saved_at.isoformat(),
                    "last_used": e.last_used.isoformat() if e.last_used else None,
                    "pipeline": e.pipeline,
                    "run": e.run,
                    "job": e.job,
                }
                for e in entries
            ]
        }
        typer.echo(dump(data, fmt))
        return
    if not entries:
        typer.echo("no caches")
        return
    now = datetime.now(UTC)
    table = Table(box=None, pad_edge=False)
    for column in ("KEY", "SIZE", "SAVED", "LAST USED", "SAVED BY"):
        table.add_column(column, overflow="fold")
    for e in entries:
        by = f"{e.run or '?'} job {e.job}" if e.job else (e.run or "")
        table.add_row(
            safe_text(e.key),
            size_text(e.size),
            when(e.saved_at, now),
            when(e.last_used, now) or "never",
            safe_text(by),
        )
    console = table_console()
    console.print(table)
    total = sum(e.size for e in entries)
    console.print(f"{len(entries)} cache{'s' * (len(entries) != 1)}, {size_text(total)}")


def clear(
    key: str | None = typer.Argument(None, help="Only the cache of this key (default: all)."),
) -> None:
    """Remove every cache, or the cache of KEY; the next job that pulls it starts without it.

    A job restoring a cache meanwhile finishes reading it. Clearing a key that has no cache
    fails.
    """
    from backend.cache_store import CacheStore

    store = CacheStore(Settings().cache_dir)
    removed = store.clear(key)
    if key is not None and not removed:
        abort(f"no cache with key {safe_text(key)!r} in {store.root}")
    typer.echo(f"removed {removed} cache{'s' * (removed != 1)}")


app.callback(help=_help(cache))(cache)
app.command("list", help=_help(list_caches))(list_caches)
app.command("clear", help=_help(clear))(clear)
