"""A cold start (fresh ``CICD_HOME``, no Prefect server yet), through the real console script.

The first run does not wait for its home's Prefect server: its jobs start while the server
boots (backend/headstart.py), and when they all succeed before it answers, the run ends at once
and its flow mirrors it into Prefect afterwards. Either way the run must end in its true state
and appear in Prefect, completed, under the flow run id the store records.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cicd_cli.daemon import stop_daemon
from flows.prefect_api import auth_header, read_local_server, stop_local_server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))  # not a package
from e2ekit import BUSYBOX, Project, own_prefect_project

TWO_STAGES = f"""\
pipeline: {{name: cold, stages: [build, test], image: {BUSYBOX}}}
jobs:
  - {{name: compile, stage: build, script: "echo built > out.txt"}}
  - {{name: lint, stage: build, script: "echo linted"}}
  - {{name: unit, stage: test, script: "cat out.txt"}}
"""


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    """A project whose cicd starts its own Prefect server; daemon and server stopped after."""
    made = own_prefect_project(tmp_path, {".pipelines/cold.yaml": TWO_STAGES})
    yield made
    stop_daemon(made.home)
    stop_local_server(made.home)


def _flow_run_id(home: Path, timeout: float = 60) -> str:
    """The Prefect flow run id the store records for run 1 (attached after a head start)."""
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(home / "cicd.db") as db:
            row = db.execute("SELECT flow_run_id FROM pipeline_runs WHERE number = 1").fetchone()
        if row and row[0]:
            return str(row[0])
        assert time.monotonic() < deadline, "the run never got its Prefect flow run"
        time.sleep(0.3)


@pytest.mark.docker
def test_cold_start_run_succeeds_and_is_mirrored_into_prefect(project: Project) -> None:
    out = project.run("-p", "cold", timeout=240)

    assert out.returncode == 0, out.stdout + out.stderr
    assert "cold#1 SUCCESS" in out.stdout
    assert "built" in out.job_lines("unit")  # the second stage saw the first one's workspace
    report = project.report("cold", 1)
    assert {j["name"]: j["status"] for s in report["stages"] for j in s["jobs"]} == {
        "compile": "SUCCESS",
        "lint": "SUCCESS",
        "unit": "SUCCESS",
    }
    assert [s["status"] for s in report["stages"]] == ["SUCCESS", "SUCCESS"]

    flow_run_id = _flow_run_id(project.home)
    server = read_local_server(project.home)
    assert server is not None
    with httpx.Client(base_url=str(server["url"]), headers=auth_header(project.home)) as api:
        deadline = time.monotonic() + 60
        while True:
            flow_run = api.get(f"/flow_runs/{flow_run_id}").raise_for_status().json()
            if flow_run["state_type"] != "RUNNING" and flow_run["state_type"] != "PENDING":
                break
            assert time.monotonic() < deadline, flow_run["state_type"]
            time.sleep(0.3)
        assert flow_run["name"] == "cold#1"
        assert flow_run["state_type"] == "COMPLETED"
        subflows = api.post(
            "/flow_runs/filter",
            json={"flow_runs": {"parent_flow_run_id": {"any_": [flow_run_id]}}},
        )
        # each stage a subflow, each job a task of it: the Prefect UI shows the run as any other
        stages = {f["name"]: f["state_type"] for f in subflows.raise_for_status().json()}
        assert stages == {"cold#1/build": "COMPLETED", "cold#1/test": "COMPLETED"}
    # the run's end stands: the mirror did not settle it again
    assert project.report("cold", 1)["status"] == "SUCCESS"
