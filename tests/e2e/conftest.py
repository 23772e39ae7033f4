"""Fixtures for the end-to-end tests: a git project with its own CICD_HOME, run for real.

Every test here needs the real Docker engine with the local images and the session's Prefect
server (``prefect_api``); ``cicd`` runs as the installed console script in a subprocess.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from e2ekit import Project


@pytest.fixture
def project(tmp_path: Path, prefect_api: str) -> Project:
    """An empty git repository (branch ``main``) with its own ``CICD_HOME``."""
    return Project.create(tmp_path)
