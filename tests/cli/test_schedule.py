"""``cicd schedule add|list|remove`` through the console script, against the session's real
Prefect server; and a schedule fired (Prefect's run-now on its deployment) and executed by a
``cicd worker`` with real containers, its jobs seeing CI_PIPELINE_SOURCE=schedule.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from prockit import stop_group

CICD = Path(sys.executable).with_name("cicd")

GITLAB_CI = """\
image: cicd-busybox:latest
nightly:
  script: ['echo "source is $CI_PIPELINE_SOURCE"']
  rules:
    - if: $CI_PIPELINE_SOURCE == "schedule"
"""


def cli_env(home: Path) -> dict[str, str]:
    """``cicd``'s environment: this home, the session's Prefect API (inherited), UTC."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CICD_")}
    env.update(CICD_HOME=str(home), TZ="UTC", COLUMNS="200", NO_COLOR="1")
    return env


def cicd(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the real console script."""
    return subprocess.run(
        [str(CICD), *args], env=cli_env(home), capture_output=True, text=True,
        timeout=timeout, check=False,
    )


def listed(home: Path) -> dict[str, dict[str, Any]]:
    """``cicd schedule list --format json``, by name."""
    done = cicd(home, "schedule", "list", "--format", "json")
    assert done.returncode == 0, done.stderr
    return {s["name"]: s for s in json.loads(done.stdout)["schedules"]}


def unique(prefix: str) -> str:
    """A name no other test of the session uses (they share one Prefect server)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def make_repo(path: Path) -> Path:
    """A one-commit repository with a .gitlab-ci.yml whose job runs only on a schedule."""
    path.mkdir(parents=True)
    (path / ".gitlab-ci.yml").write_text(GITLAB_CI)
    for args in (["init", "-q", "-b", "main"], ["add", "."],
                 ["-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", "one"]):
        subprocess.run(["git", *args], cwd=path, check=True)
    return path


def test_schedule_add_list_remove_through_prefect(tmp_path: Path, prefect_api: str) -> None:
    name = unique("nightly")
    added = cicd(tmp_path, "schedule", "add", name, "--cron", "0 3 * * *",
                 "--repo", "https://git.example.com/team/app.git", "--branch", "main",
                 "-p", "build")
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == f"added schedule '{name}': 0 3 * * * (UTC) on pool cicd"
    found = listed(tmp_path)[name]
    assert {k: v for k, v in found.items() if k != "next_run"} == {
        "name": name, "cron": "0 3 * * *", "timezone": "UTC",
        "repo": "https://git.example.com/team/app.git", "branch": "main", "pipeline": "build",
        "pool": "cicd", "active": True,
    }
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:  # what Prefect (and its UI) holds
        deployment = client.read_deployment_by_name(f"cicd-deployment/{name}")
    assert deployment.parameters["source"] == "schedule"
    assert deployment.schedules[0].schedule.cron == "0 3 * * *"
    assert deployment.entrypoint == "flows/deployment.py:run_repository"
    text = cicd(tmp_path, "schedule", "list")
    assert any(line.split()[:3] == [name, "0", "3"] for line in text.stdout.splitlines())

    removed = cicd(tmp_path, "schedule", "remove", name)
    assert (removed.returncode, removed.stdout.strip()) == (0, f"removed schedule '{name}'")
    assert name not in listed(tmp_path)
    again = cicd(tmp_path, "schedule", "remove", name)
    assert again.returncode == 1
    assert again.stderr.strip() == (
        f"error: no schedule named '{name}' (cicd schedule list shows them)"
    )


def test_schedule_add_bad_cron_is_one_line_and_creates_nothing(
    tmp_path: Path, prefect_api: str
) -> None:
    name = unique("bad")
    done = cicd(tmp_path, "schedule", "add", name, "--cron", "61 3 * * *", "--repo", "x://y")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: --cron '61 3 * * *' (timezone UTC): Invalid cron string: \"61 3 * * *\""
    )
    zone = cicd(tmp_path, "schedule", "add", name, "--cron", "0 3 * * *", "--repo", "x://y",
                "--timezone", "Mars/Olympus")
    assert zone.returncode == 2 and zone.stderr.startswith("error: --cron '0 3 * * *'")
    assert len(zone.stderr.strip().splitlines()) == 1
    assert name not in listed(tmp_path)


def test_schedule_add_bad_name_or_repo_is_a_usage_error(tmp_path: Path) -> None:
    # refused before Prefect is asked anything (no prefect_api here)
    name = cicd(tmp_path, "schedule", "add", "../x", "--cron", "0 3 * * *", "--repo", "x://y")
    assert (name.returncode, name.stderr.strip()) == (2, (
        "error: schedule name '../x': 1 to 63 letters, digits, '.', '_' or '-', starting with "
        "a letter or digit"
    ))
    repo = cicd(tmp_path, "schedule", "add", "n", "--cron", "0 3 * * *", "--repo", "nowhere")
    assert (repo.returncode, repo.stderr.strip()) == (
        2, "error: --repo nowhere: neither a URL nor a folder"
    )


def test_schedule_add_existing_name_is_refused(tmp_path: Path, prefect_api: str) -> None:
    name = unique("twice")
    args = ("schedule", "add", name, "--cron", "*/5 * * * *", "--repo", "https://h/r.git")
    assert cicd(tmp_path, *args).returncode == 0
    try:
        again = cicd(tmp_path, *args[:4], "0 1 * * *", *args[5:])
        assert again.returncode == 2
        assert again.stderr.strip() == (
            f"error: a schedule (or deployment) named '{name}' exists: remove it first"
        )
        assert listed(tmp_path)[name]["cron"] == "*/5 * * * *"
    finally:
        cicd(tmp_path, "schedule", "remove", name)


@pytest.mark.docker
@pytest.mark.slow
def test_schedule_fires_on_a_worker_with_schedule_source(tmp_path: Path, prefect_api: str) -> None:
    """Prefect's run-now on the schedule's deployment, picked up by `cicd worker --pool`."""
    repo = make_repo(tmp_path / "repo")
    home = tmp_path / "home"
    name, pool = unique("fire"), unique("pool")
    added = cicd(home, "schedule", "add", name, "--cron", "0 3 * * *", "--repo", repo.as_uri(),
                 "--pool", pool)
    assert added.returncode == 0, added.stderr
    worker = subprocess.Popen(
        [str(CICD), "worker", "--pool", pool], cwd=tmp_path, env=cli_env(home),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        from prefect.client.orchestration import get_client

        from backend.schedules import deployment_id

        with get_client(sync_client=True) as client:
            flow_run = client.create_flow_run_from_deployment(deployment_id(name))
            deadline = time.monotonic() + 240
            while True:
                state = client.read_flow_run(flow_run.id).state
                if state is not None and state.is_final():
                    break
                assert worker.poll() is None, worker.stdout.read() if worker.stdout else b""
                assert time.monotonic() < deadline, f"the flow run stayed {state}"
                time.sleep(1)
        assert state.is_completed(), state.message
    finally:
        stop_group(worker)
        cicd(home, "schedule", "remove", name)
    report = json.loads(cicd(home, "report", "-p", "repo", "--run", "1", "--format", "json").stdout)
    assert report["status"] == "SUCCESS", report
    log = cicd(home, "logs", "repo#1", "--job", "nightly")
    assert "source is schedule" in log.stdout, log.stdout + log.stderr
