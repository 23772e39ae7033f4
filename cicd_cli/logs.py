"""``cicd logs``: print a job's log, or every job's, as stored; optionally follow it live."""

from __future__ import annotations

import os
import queue
import re
import sys
import threading
from collections.abc import Callable, Iterator

import typer
from rich.console import Console

from backend.client import Backend, open_backend
from backend.errors import NotFound
from backend.runs import RunRef
from backend.settings import Settings
from cicd_cli.errors import err_console
from cicd_cli.render import job_prefixes
from cicd_cli.terminal import has_colour, safe_text

# Each stored line starts with its UTC time (backend.recording.stamp) and one space.
_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z ")


def logs(
    run_name: str = typer.Argument(..., metavar="NAME#N", help="The run, e.g. build#3."),
    job: str | None = typer.Option(
        None, "--job", "-j", help="Only this job's log (default: every job's, in plan order)."
    ),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Keep printing new lines until the job (or the run) ends."
    ),
    timestamps: bool = typer.Option(
        True, "--timestamps/--no-timestamps", help="Show the UTC time stored before each line."
    ),
    server: str | None = typer.Option(
        None,
        "--server",
        envvar="CICD_SERVER",
        help="Ask this cicd server instead of the local history.",
    ),
) -> None:
    """Print the log of a job of a run, or of every job, each line prefixed with the job's name.

    Lines are printed as stored: a UTC timestamp, then what the job wrote, less any control
    sequence but colours (and colours too when the output has none). Without --job the jobs
    come one after the other in plan order (jobs that never started have no log). --follow keeps
    going until the job ends; without --job, while the run is going, the jobs' lines are printed
    as they come, like the live output of `cicd run`.
    """
    pipeline, number = RunRef.parse(run_name)
    backend = open_backend(Settings(), server)
    console = Console(highlight=False, markup=False)
    colour = has_colour(console)
    try:
        if job is not None:
            for line in backend.log(pipeline, number, job, follow=follow):
                _write(line, timestamps, follow, colour)
            return
        the_run = backend.run(pipeline, number)
        jobs = [j.name for stage in the_run.stages for j in stage.jobs]
        prefixes = job_prefixes(console, jobs)

        def emit(name: str, line: str) -> None:
            _write(line, timestamps, follow, colour, prefixes[name])

        if follow and not the_run.status.finished:
            shown = _follow_all(backend, pipeline, number, jobs, emit)
        else:
            shown = _print_all(backend, pipeline, number, jobs, emit)
        if not shown:
            err_console.print(f"no job of {pipeline}#{number} has a log yet", markup=False)
    except BrokenPipeError:  # `cicd logs ... | head`: the reader has all it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(0) from None


def _write(line: str, timestamps: bool, flush: bool, colour: bool, prefix: str = "") -> None:
    if not timestamps:
        line = _STAMP.sub("", line, count=1)
    # the log keeps what the job wrote; the terminal gets nothing that can drive it
    sys.stdout.write(f"{prefix}{safe_text(line, colour)}\n")
    if flush:
        sys.stdout.flush()


def _lines(backend: Backend, pipeline: str, number: int, job: str, follow: bool) -> Iterator[str]:
    """A job's lines; nothing when it never started (canceled before its turn)."""
    try:
        yield from backend.log(pipeline, number, job, follow=follow)
    except NotFound:
        return


def _print_all(
    backend: Backend,
    pipeline: str,
    number: int,
    jobs: list[str],
    emit: Callable[[str, str], None],
) -> int:
    """Every job's whole log, one job after the other; the number of jobs that had one."""
    shown = 0
    for name in jobs:
        had = False
        for line in _lines(backend, pipeline, number, name, follow=False):
            had = True
            emit(name, line)
        shown += had
    return shown


def _follow_all(
    backend: Backend,
    pipeline: str,
    number: int,
    jobs: list[str],
    emit: Callable[[str, str], None],
) -> int:
    """Follow every job at once, printing lines as they come, until every job has ended."""
    lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
    failures: list[BaseException] = []

    def pump(name: str) -> None:
        try:
            for line in _lines(backend, pipeline, number, name, follow=True):
                lines.put((name, line))
        except BaseException as exc:  # re-raised in the main thread
            failures.append(exc)
        finally:
            lines.put((name, None))

    for name in jobs:
        threading.Thread(target=pump, args=(name,), name=f"cicd-logs-{name}", daemon=True).start()
    running, had = len(jobs), set()
    while running:
        name, line = lines.get()
        if line is None:
            running -= 1
            continue
        had.add(name)
        emit(name, line)
    if failures:
        raise failures[0]
    return len(had)
