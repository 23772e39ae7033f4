"""The CLI's handles on what cicd drives: the Prefect API and its local server, and Docker.

``cicd_cli`` never imports ``flows`` or ``backend.runner`` (tests/test_import_graph.py): each
function here imports them when it is called, so a command that does not need Prefect or the
Docker SDK does not pay for importing them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backend.runner.base import Runner


def prepare_prefect(home: Path, *, import_flow: bool = True) -> str:
    """Point this process at the Prefect API and import the flow, before any run executes.

    The API is ``PREFECT_API_URL`` when set, else the local server of ``home``, started when
    none runs. Returns its URL while that server may still be starting (``wait_for_prefect``).
    With ``import_flow=False`` the flow (Prefect, ~2 s) is left for ``import_flow_soon``.
    """
    from flows.prefect_api import configure_prefect

    url = configure_prefect(home, wait=False)  # a starting server boots during the imports
    if import_flow:
        import flows.pipeline  # noqa: F401  (imports Prefect)
    return url


def import_flow_soon() -> None:
    """Import the flow (Prefect) in a background thread: a server serves meanwhile.

    Called once the caller's own imports are done (two threads importing the same modules at
    once could meet a circular import half-done); a run that needs the flow before it is
    imported waits for the import, which Python's module locks serialise.
    """
    import threading

    def load() -> None:
        import flows.pipeline  # noqa: F401

    threading.Thread(target=load, name="cicd-import-flow", daemon=True).start()


def wait_for_prefect() -> None:
    """Wait until the Prefect API configured by ``prepare_prefect`` answers."""
    from flows.prefect_api import wait_for_prefect as wait

    wait()


def use_prefect(home: Path) -> str:
    """Point this process at the Prefect API (as ``prepare_prefect``), waiting until it answers,
    without importing the flow; return its URL."""
    from flows.prefect_api import configure_prefect

    return configure_prefect(home)


def ensure_work_pool(name: str) -> bool:
    """Create the Prefect work pool ``name`` unless it exists; True when it was created."""
    from flows.worker import ensure_work_pool as ensure

    return ensure(name)


def spawn_local_prefect(home: Path) -> None:
    """Start the local Prefect server of ``home`` in the background unless one runs."""
    from flows.prefect_api import spawn_local_server

    spawn_local_server(home)


def read_local_prefect(home: Path) -> dict[str, object] | None:
    """The state of the local Prefect server of ``home`` (pid, url), None when none runs."""
    from flows.prefect_api import read_local_server

    return read_local_server(home)


def stop_local_prefect(home: Path) -> bool:
    """Stop the local Prefect server of ``home``; True when one was running."""
    from flows.prefect_api import stop_local_server

    return stop_local_server(home)


def release_local_prefect(home: Path) -> bool:
    """This process no longer uses ``home``'s local Prefect server: stop it unless another
    process does; True when it was stopped."""
    from flows.prefect_api import release_local_server

    return release_local_server(home)


def docker_runner() -> Runner:
    """The Docker runner (its ``check`` tells whether the engine answers)."""
    from backend.runner.docker import DockerRunner

    return DockerRunner()
