"""The deployed flow runs a repository's pipeline like ``cicd run --repo``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from backend.settings import Settings

ROOT = Path(__file__).resolve().parents[2]

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


@pytest.mark.docker
def test_deployment_flow_runs_the_repository_pipeline(
    tmp_path: Path, prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    (repo / ".pipelines").mkdir(parents=True)
    (repo / ".pipelines" / "pipeline.yaml").write_text(PIPELINE)
    for args in (["init", "-q", "-b", "main"], ["add", "."],
                 ["-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", "one"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
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
