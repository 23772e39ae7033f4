"""``cicd run --server URL``: send the run to a cicd server and show it exactly as embedded."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.text import Text

from backend.errors import ServerError
from backend.settings import Settings
from cicd_cli.errors import EXIT_OK
from cicd_cli.render import LivePrinter, print_run_end, submitted_line

if TYPE_CHECKING:
    from backend.requests import PreparedRun
    from backend.schemas import RunPublic


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run_remote(
    server: str,
    settings: Settings,
    prepared: PreparedRun,
    console: Console,
    *,
    bundle: bool = True,
    read_run: Callable[[str, int], RunPublic] | None = None,
) -> int:
    """Submit the run, stream its events, print the summary; return the exit status.

    With ``bundle`` the commit travels along as a git bundle; without (the local daemon) the
    server reads it from the repository at ``request.repo``. Ctrl-C (or SIGTERM) asks the server
    to cancel the run and waits until it has settled (a second Ctrl-C stops waiting).
    ``read_run`` reads the ended run where the server cannot answer any more (the local daemon
    shares this ``CICD_HOME``'s store: stopped right after the run settled, it is gone before
    the summary is read).
    """
    from backend.remote import RemoteBackend
    from backend.tokens import client_token

    backend = RemoteBackend(server, token=client_token(settings, server))
    request = prepared.request
    data = None
    if bundle:
        from backend.source.bundles import make_bundle

        data = make_bundle(prepared.source)
    reply = backend.submit(prepared, data)
    pipeline, number, name = reply["pipeline"], int(reply["run"]), reply["name"]
    console.print(submitted_line(name, request, bool(reply.get("duplicate"))))
    if reply.get("duplicate"):
        return EXIT_OK
    printer = LivePrinter(console, [job.name for job in request.pipeline.jobs])
    previous = signal.signal(signal.SIGTERM, _interrupt)
    seen = 0
    try:
        for event in backend.events(pipeline, number):
            seen += 1
            printer(event)
    except KeyboardInterrupt:
        backend.cancel(pipeline, number)
        with contextlib.suppress(KeyboardInterrupt):  # until its containers are gone
            for event in backend.events(pipeline, number, after=seen):
                printer(event)
        console.print(Text(f"{name} canceled (interrupted)", style="yellow"))
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    try:
        run = backend.run(pipeline, number)
    except ServerError:
        if read_run is None:
            raise
        run = read_run(pipeline, number)
    return print_run_end(console, run)
