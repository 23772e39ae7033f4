"""A job printing its secret: ``****`` in live events, the stored log, the API; not on disk."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from apikit import IMAGE, Api, follow, make_repo, submit

from backend.requests import PreparedRun
from backend.runner.docker import DockerRunner

SECRET = "hunter2-very-secret"

PIPELINE = f"""\
pipeline:
  name: secretive
  image: {IMAGE}
jobs:
  - name: leak
    stage: build
    script:
      - echo "the token is $TOKEN"
      - echo "$TOKEN" > token.txt
      - test "$(cat token.txt)" = "{SECRET}"
      - echo "$TOKEN$TOKEN and $PLAIN"
"""


def _files_containing(root: Path, needle: bytes) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and needle in path.read_bytes():
            found.append(path)
    return found


@pytest.mark.docker
def test_secret_printed_by_a_job_is_masked_everywhere(
    start_api: Callable[..., Api],
    prefect_api: str,
    tmp_path: Path,
    prepare: Callable[..., PreparedRun],
) -> None:
    api = start_api(runner=DockerRunner())
    prepared = prepare(
        make_repo(tmp_path / "repo", PIPELINE), secrets={"TOKEN": SECRET}, env={"PLAIN": "shown"}
    )
    submit(api, prepared)
    events = follow(api, "secretive", 1)

    lines = [e["text"] for e in events if e["kind"] == "line"]
    assert "the token is ****" in lines  # live output
    assert "******** and shown" in lines or "**** and shown" in lines
    assert events[-1]["status"] == "SUCCESS"  # the job saw the real value
    with api.client() as client:
        log = client.get("/runs/secretive/1/jobs/leak/log").text
        job = client.get("/runs/secretive/1/jobs/leak").text
        run = client.get("/runs/secretive/1").text
    assert "the token is ****" in log and SECRET not in log
    assert SECRET not in job and SECRET not in run
    home = api.settings.home
    assert _files_containing(home, SECRET.encode()) == []  # logs, store, artifacts
    # Docker keeps each container's environment in its state files: the value is not there
    leftovers = subprocess.run(
        ["grep", "-rl", SECRET, "/var/lib/docker/containers"], capture_output=True, text=True
    )
    assert leftovers.stdout == ""
