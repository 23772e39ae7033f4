"""A Prefect server for the test session, started on first use and stopped at the end.

Prefect reads ``PREFECT_API_URL`` when it is imported, so the URL (a free port) is fixed when
pytest starts; the server itself is only started by the ``prefect_api`` fixture.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from prockit import free_port

_state: dict[str, object] = {}


def pytest_configure(config: pytest.Config) -> None:
    """Fix the Prefect API URL of the session before anything imports Prefect."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "ERROR")
    if os.environ.get("PREFECT_API_URL"):
        return
    home = Path(tempfile.mkdtemp(prefix="cicd-test-prefect-"))
    port = free_port()
    os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
    os.environ["PREFECT_HOME"] = str(home / "prefect")
    from flows.prefect_api import local_auth_string, loopback_ca_file  # (not Prefect)

    os.environ["PREFECT_API_AUTH_STRING"] = local_auth_string(home)  # the server requires it
    os.environ["PREFECT_API_SSL_CERT_FILE"] = str(loopback_ca_file(home))  # as cicd's own
    _state.update(home=home, port=port)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop the session's Prefect server and remove its files."""
    home = _state.get("home")
    if isinstance(home, Path):
        from flows.prefect_api import stop_local_server

        if "prefect" in sys.modules:  # send the logs still queued while the server is up
            from prefect.logging.handlers import APILogWorker

            APILogWorker.drain_all(timeout=10)
        stop_local_server(home)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """The URL of a running Prefect API for this session."""
    from flows.prefect_api import start_local_server

    home = _state.get("home")
    if isinstance(home, Path):
        url = start_local_server(home, port=int(str(_state["port"])))
        assert url == os.environ["PREFECT_API_URL"], (url, os.environ["PREFECT_API_URL"])
    yield os.environ["PREFECT_API_URL"]
