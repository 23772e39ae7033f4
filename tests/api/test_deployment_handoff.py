"""A scheduled run on a team's worker goes through the server (flows/deployment.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from apikit import Api, follow

from backend.schemas import Status
from flows.deployment import run_repository


def test_deployment_flow_with_a_server_hands_the_run_to_it(
    api: Api, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker_home = tmp_path / "worker-home"
    monkeypatch.setenv("CICD_HOME", str(worker_home))
    monkeypatch.setenv("CICD_SERVER", api.url)
    monkeypatch.delenv("CICD_DATABASE_URL", raising=False)

    state = run_repository.fn(repo=str(repo), source="schedule")

    assert state.is_completed() and state.result() == "demo#1"
    assert state.message == f"demo#1 submitted to {api.url}"
    follow(api, "demo", 1)
    run = api.service.run("demo", 1)
    assert run.status is Status.SUCCESS and run.worker == api.service.worker
    with api.client() as client:  # the run's logs are the server's, not the worker's
        log = client.get("/runs/demo/1/jobs/compile/log")
    assert log.status_code == 200 and "compiling" in log.text
    assert not (worker_home / "logs").exists()  # nothing ran on the worker itself
