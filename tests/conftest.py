"""Fixtures and marker handling for the whole suite.

Tests marked ``docker`` need a real Docker engine and the local images (``scripts/setup.sh``
makes both); tests marked ``postgres`` need ``CICD_TEST_POSTGRES_URL``. When what they need is
missing they are skipped with the reason, except in CI (``CI=true``), where they fail: CI never
skips silently. After every ``docker`` test, no container it started may remain (containers of
other test sessions sharing the engine are told apart by their workspace mounts).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.errors import EngineUnavailable
from backend.runner.base import LABEL_DEBUG_DIR, LABEL_JOB, LABEL_MANAGED, LABEL_RUN, PullPolicy
from backend.runner.docker import DockerRunner

# A Prefect API for the session (tests/prefect_plugin.py); only the top-level conftest may say so.
pytest_plugins = ["prefect_plugin"]

BUSYBOX_IMAGE = "cicd-busybox:latest"
PYTHON_IMAGE = "cicd-python:bookworm"
POSTGRES_ENV = "CICD_TEST_POSTGRES_URL"
_LEFTOVER_GRACE_SECONDS = 3.0

_docker_problem: list[str | None] = []  # computed once per session: None when Docker is usable


def in_ci() -> bool:
    """True when running in CI, where missing services fail tests instead of skipping them."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _missing(reason: str) -> None:
    if in_ci():
        pytest.fail(f"{reason} (CI=true: required in CI)", pytrace=False)
    pytest.skip(reason)


def _docker_unusable() -> str | None:
    if not _docker_problem:
        problem: str | None = None
        runner = DockerRunner()
        try:
            runner.check()
            errors = runner.ensure_images([BUSYBOX_IMAGE, PYTHON_IMAGE], PullPolicy.NEVER)
            missing = [image for image, error in errors.items() if error is not None]
            if missing:
                problem = f"local test images missing: {', '.join(missing)} (run scripts/setup.sh)"
        except EngineUnavailable as exc:
            problem = f"{exc} (run scripts/setup.sh)"
        _docker_problem.append(problem)
    return _docker_problem[0]


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip (or, in CI, fail) tests whose Docker engine or PostgreSQL server is missing."""
    if item.get_closest_marker("docker") is not None:
        problem = _docker_unusable()
        if problem is not None:
            _missing(problem)
    if item.get_closest_marker("postgres") is not None and not os.environ.get(POSTGRES_ENV):
        _missing(f"{POSTGRES_ENV} is not set (scripts/test.sh sets it)")


def managed_containers() -> dict[str, str]:
    """Every container carrying the product's label: id -> "run/job status"."""
    fields = (
        f'{{{{.ID}}}} {{{{.Label "{LABEL_RUN}"}}}}/{{{{.Label "{LABEL_JOB}"}}}} {{{{.Status}}}}'
    )
    listed = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"label={LABEL_MANAGED}", "--format", fields],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = (line.split(" ", 1) for line in listed.stdout.splitlines() if line.strip())
    return {row[0]: row[1] for row in rows}


def _foreign(container_ids: list[str], basetemp: Path) -> set[str]:
    """The containers that mount something outside this session's temporary directory.

    Every job container mounts its run's workspace; tests keep theirs under ``basetemp``, so a
    container mounting another place belongs to another session sharing the engine.
    """
    fields = "{{.Id}} {{range .Mounts}}{{.Source}} {{end}}"
    inspected = subprocess.run(
        ["docker", "inspect", "--format", fields, *container_ids],
        capture_output=True,
        text=True,
        check=False,  # a container may be removed meanwhile
    )
    foreign = set()
    for line in inspected.stdout.splitlines():
        if not line.strip():  # a container removed meanwhile prints an empty line
            continue
        full_id, *sources = line.split()
        if any(not Path(source).is_relative_to(basetemp) for source in sources):
            foreign.update(cid for cid in container_ids if full_id.startswith(cid))
    return foreign


@pytest.fixture(autouse=True)
def _no_container_left(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """After a ``docker`` test, assert that every container it started is gone."""
    if request.node.get_closest_marker("docker") is None or _docker_unusable() is not None:
        yield
        return
    before = managed_containers()
    yield
    basetemp = tmp_path_factory.getbasetemp().resolve()
    deadline = time.monotonic() + _LEFTOVER_GRACE_SECONDS
    while True:
        left = {cid: what for cid, what in managed_containers().items() if cid not in before}
        for cid in _foreign(list(left), basetemp) if left else ():
            del left[cid]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not left, f"containers left behind: {sorted(left.values())}"


@pytest.fixture(scope="session", autouse=True)
def _no_debug_image_left(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """At the end of the session, remove the ``cicd debug`` snapshot images of its jobs that
    failed (their ``CICD_HOME`` is under this session's temporary directory)."""
    yield
    if _docker_unusable() is not None:
        return
    basetemp = tmp_path_factory.getbasetemp().resolve()
    listed = subprocess.run(
        ["docker", "images", "-q", "--no-trunc", "--filter", f"label={LABEL_DEBUG_DIR}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if not listed.stdout.split():
        return
    fields = f'{{{{.Id}}}} {{{{index .Config.Labels "{LABEL_DEBUG_DIR}"}}}}'
    listed = subprocess.run(
        ["docker", "image", "inspect", "--format", fields, *set(listed.stdout.split())],
        capture_output=True,
        text=True,
        check=False,  # one may be removed meanwhile
    )
    rows = (line.split(" ", 1) for line in listed.stdout.splitlines() if " " in line)
    ours = sorted({image for image, home in rows if Path(home).is_relative_to(basetemp)})
    if ours:
        subprocess.run(["docker", "rmi", "-f", *ours], capture_output=True, check=False)


@pytest.fixture(scope="session")
def docker_runner() -> DockerRunner:
    """One ``DockerRunner`` for the session, shared like the product shares it."""
    problem = _docker_unusable()
    if problem is not None:
        _missing(problem)
    return DockerRunner()


@pytest.fixture(scope="session")
def busybox_image() -> str:
    """A ~2 MB local image with a POSIX shell (built by scripts/images.sh)."""
    return BUSYBOX_IMAGE


@pytest.fixture(scope="session")
def python_image() -> str:
    """A local Debian image with python3, pytest, pip, venv and git (built by scripts/images.sh)."""
    return PYTHON_IMAGE
