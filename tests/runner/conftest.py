"""Fixtures for the runner tests: job specs and an image without a shell."""

from __future__ import annotations

import io
import subprocess
import tarfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from backend.runner.base import JobSpec

NO_SHELL_IMAGE = "cicd-test-no-shell:latest"


@pytest.fixture
def make_spec(tmp_path: Path, busybox_image: str) -> Callable[..., JobSpec]:
    """Build a busybox ``JobSpec`` for a script; one run id and workspace per test."""
    run_id = f"test-{uuid.uuid4().hex[:12]}"
    workspace = tmp_path / "workspace"
    workspace.mkdir()

    def make(script: list[str], **changes: object) -> JobSpec:
        fields: dict[str, object] = {
            "run_id": run_id,
            "job": "job",
            "stage": "test",
            "image": busybox_image,
            "script": script,
            "env": {},
            "workspace": workspace,
            "timeout": 30.0,
        }
        fields.update(changes)
        return JobSpec(**fields)  # type: ignore[arg-type]

    return make


@pytest.fixture(scope="session")
def no_shell_image() -> Iterator[str]:
    """A local image holding a single file and no shell, so no script can start in it."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        content = b"no shell here\n"
        info = tarfile.TarInfo("README")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    subprocess.run(
        ["docker", "import", "-", NO_SHELL_IMAGE],
        input=data.getvalue(),
        capture_output=True,
        check=True,
    )
    yield NO_SHELL_IMAGE
    subprocess.run(["docker", "rmi", NO_SHELL_IMAGE], capture_output=True, check=False)
