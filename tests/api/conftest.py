"""Fixtures for the API tests: a real uvicorn server on a free port, a git repository to submit.

The server runs ``create_app`` over a real ``Service`` (SQLite store under a temporary
``CICD_HOME``) with a ``FakeRunner``, in a background thread; the session's Prefect API comes
from ``tests/prefect_plugin.py``. Tests talk to it over real HTTP with httpx or ``RemoteBackend``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from apikit import Api, make_repo, serve

from backend.api import create_app
from backend.events import EventHub
from backend.requests import PreparedRun, prepare_run
from backend.runner.base import FakeOutcome, Runner
from backend.runner.fake import FakeRunner
from backend.service import Service
from backend.settings import Settings


@pytest.fixture
def start_api(tmp_path: Path) -> Iterator[Callable[..., Api]]:
    """Start an API server (optionally with a token or another runner); stopped at teardown."""
    started: list[Api] = []

    def start(
        token: str | None = None,
        runner: Runner | None = None,
        prefect_url: str | None = None,
        service_class: type[Service] = Service,
        local_paths: bool = False,
        **options: Any,
    ) -> Api:
        """``options`` are further ``Settings`` fields (max_runs, max_followers, ...);
        ``local_paths`` serves as the local daemon does (repositories named by path)."""
        settings = Settings(home=tmp_path / "home", api_token=token, **options)
        runner = runner if runner is not None else FakeRunner()
        service = service_class(settings, runner=runner, mode="server")
        hub = EventHub()
        app = create_app(
            service, settings, hub=hub, prefect_url=prefect_url, local_paths=local_paths
        )
        url, server, thread = serve(app)
        api = Api(url, service, settings, runner, hub, server, thread)
        started.append(api)
        return api

    yield start
    for api in started:
        api.stop()


@pytest.fixture
def api(start_api: Callable[..., Api], prefect_api: str) -> Api:
    """A server without a token over a ``FakeRunner`` (``api.runner``), with Prefect up."""
    return start_api(runner=FakeRunner(outcomes={
        "compile": FakeOutcome(lines=["compiling", "done"]),
        "unit": FakeOutcome(lines=["3 passed"], seconds=0.2),
        "lint": FakeOutcome(exit_code=1, lines=["style!"]),
    }))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A one-commit git repository holding the ``demo`` pipeline."""
    return make_repo(tmp_path / "repo")


@pytest.fixture
def prepare(tmp_path: Path) -> Callable[..., PreparedRun]:
    """``prepare_run`` for a repository as ``cicd run --server`` does it."""

    def make(repo: Path, **options: Any) -> PreparedRun:
        return prepare_run(cwd=repo, cache_dir=tmp_path / "client-cache", **options)

    return make


