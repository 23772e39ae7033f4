"""The deployed flow runs a repository's pipeline like ``cicd run --repo``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from prockit import stop_group

from backend.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CICD = Path(sys.executable).with_name("cicd")
PREFECT = Path(sys.executable).with_name("prefect")

PIPELINE = """\
pipeline:
  name: nightly
  image: cicd-busybox:latest
jobs:
  - name: hello
    stage: build
    script: echo "hello from $CICD_RUN"
"""


def test_prefect_yaml_deploys_the_repository_flow() -> None:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    (deployment,) = config["deployments"]
    path, _, name = deployment["entrypoint"].partition(":")
    assert (ROOT / path).is_file()
    assert f"def {name}(" in (ROOT / path).read_text()
    assert deployment["schedules"][0]["cron"] == "0 3 * * *"


def make_repo(repo: Path) -> None:
    """A git repository whose default pipeline file is PIPELINE."""
    (repo / ".pipelines").mkdir(parents=True)
    (repo / ".pipelines" / "pipeline.yaml").write_text(PIPELINE)
    for args in (["init", "-q", "-b", "main"], ["add", "."],
                 ["-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", "one"]):
        subprocess.run(["git", *args], cwd=repo, check=True)


def wait_for_pool(pool: str, worker: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Wait until work pool ``pool`` exists (the worker must keep running meanwhile)."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            assert worker.poll() is None, worker.stdout.read() if worker.stdout else b""
            try:
                client.read_work_pool(pool)
                return
            except Exception:  # not there yet
                assert time.monotonic() < deadline, f"no work pool {pool} after {timeout}s"
                time.sleep(0.3)


@pytest.mark.docker
@pytest.mark.slow
def test_deployment_deployed_with_prefect_and_triggered_runs_on_a_cicd_worker(
    tmp_path: Path, prefect_api: str
) -> None:
    """prefect.yaml as a team uses it: `prefect deploy`, `cicd worker`, a triggered run."""
    repo = tmp_path / "repo"
    make_repo(repo)
    pool = f"deploy-e2e-{os.getpid()}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CICD_")},
        "CICD_HOME": str(tmp_path / "home"),
        "CICD_DEPLOY_REPO": str(repo),
    }
    worker = subprocess.Popen(
        [str(CICD), "worker", "--pool", pool], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        wait_for_pool(pool, worker)  # `cicd worker` creates it; `prefect deploy` needs it
        deploy = subprocess.run(
            [str(PREFECT), "--no-prompt", "deploy", "--all", "--pool", pool],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False,
        )
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        triggered = subprocess.run(
            [str(PREFECT), "deployment", "run", "cicd-deployment/nightly",
             "--watch", "--watch-timeout", "180"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240, check=False,
        )
        assert triggered.returncode == 0, triggered.stdout + triggered.stderr
        assert "Flow run finished successfully" in triggered.stdout, triggered.stdout
        assert worker.poll() is None, "the worker exited"
    finally:
        stop_group(worker)

    def cicd(*args: str) -> str:
        done = subprocess.run(
            [str(CICD), *args], cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=60, check=True,
        )
        return done.stdout

    report = json.loads(cicd("report", "-p", "nightly", "--run", "1", "--format", "json"))
    assert report["status"] == "SUCCESS", report
    assert report["branch"] == "main"
    assert report["worker"].partition("/")[2].startswith("worker-"), report["worker"]
    assert "hello from nightly#1" in cicd("logs", "nightly#1", "--job", "hello")


@pytest.mark.docker
def test_deployment_flow_runs_the_repository_pipeline(
    tmp_path: Path, prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    make_repo(repo)
    monkeypatch.setenv("CICD_HOME", str(tmp_path / "home"))
    from flows.deployment import run_repository

    state = run_repository(repo=f"file://{repo}", return_state=True)

    assert state.is_completed(), state.message
    assert state.message == "nightly#1 SUCCESS"
    from backend.service import Service

    run = Service(Settings()).run("nightly", 1)
    assert run.status.value == "SUCCESS" and run.branch == "main"
    log = Service(Settings()).log_file("nightly", 1, "hello").read_text()
    assert "hello from nightly#1" in log
