"""A job printing its secret: ``****`` in live events, the stored log, the API; not on disk."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from apikit import IMAGE, Api, follow, make_repo, submit
from imagekit import image_with_user

from backend.errors import UsageError
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


@pytest.mark.docker
def test_secret_in_image_with_non_root_user_reaches_job_and_is_masked(
    start_api: Callable[..., Api],
    prefect_api: str,
    tmp_path: Path,
    prepare: Callable[..., PreparedRun],
) -> None:
    api = start_api(runner=DockerRunner())
    with image_with_user(IMAGE, "1000:1000") as image:
        pipeline = f"""\
pipeline: {{name: nonroot, image: "{image}"}}
jobs:
  - {{name: whoami, stage: build, script: ["id -u", 'echo "the token is $TOKEN"']}}
"""
        submit(api, prepare(make_repo(tmp_path / "repo", pipeline), secrets={"TOKEN": SECRET}))
        events = follow(api, "nonroot", 1)

    lines = [e["text"] for e in events if e["kind"] == "line"]
    assert "1000" in lines and "the token is ****" in lines, lines
    assert events[-1]["status"] == "SUCCESS", events[-3:]
    assert SECRET not in str(events)


def test_secret_name_not_a_shell_name_is_refused_at_submit(
    start_api: Callable[..., Api],
    prefect_api: str,
    tmp_path: Path,
    prepare: Callable[..., PreparedRun],
) -> None:
    api = start_api()
    prepared = prepare(make_repo(tmp_path / "repo", PIPELINE), secrets={"MY-TOKEN": SECRET})

    with pytest.raises(UsageError) as refused:  # HTTP 400
        submit(api, prepared)

    assert str(refused.value) == (
        "secret name 'MY-TOKEN' is not a shell variable name "
        "(letters, digits and _, not starting with a digit)"
    )
    with api.client() as client:
        assert client.get("/runs/secretive/1").status_code == 404  # nothing was recorded
