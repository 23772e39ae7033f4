"""Fixtures for the history commands: a CICD_HOME with fabricated runs, and ``cicd`` to ask it.

What the runs hold is in ``fabricate.py``; tests build their expected output from the same data.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fabricate import Cicd, History, Run, build_1, build_2, deploy_running, docs_1, run_cicd

from backend.settings import Settings
from backend.store import Store


@pytest.fixture
def history(tmp_path: Path) -> Iterator[History]:
    """A CICD_HOME holding build#1, build#2 and docs#1 (all finished)."""
    home = tmp_path / "home"
    settings = Settings(home=home, database_url=None, server=None)
    home.mkdir()
    with Store(settings.store_url) as store:
        recorded = History(home, settings, store)
        for run in (build_1(), build_2(), docs_1()):
            recorded.record(run)
        yield recorded


@pytest.fixture
def running(history: History) -> Run:
    """deploy#1 added to ``history``, RUNNING in a live process, its job times set to now."""
    run = history.record(deploy_running())
    history.store.set_stage(run.run_id, "ship", started_at=run.started_at)
    history.store.set_job(run.run_id, "push", started_at=run.started_at)
    return run


@pytest.fixture
def cicd(history: History) -> Cicd:
    """Run the real ``cicd`` console script against ``history``'s home."""
    return run_cicd(history.home)
