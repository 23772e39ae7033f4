"""``kill -9`` of the daemon in the middle of a run with a secret: nothing of the run survives.

The next ``cicd`` command on that ``CICD_HOME`` settles the dead run (``Service.reconcile``): no
container of the run is left, no file holds the secret, and the run's flow run, its stage
subflow and its job task are CRASHED in Prefect instead of RUNNING for ever. Everything runs
through the installed console script, as a user would (``e2ekit``), with the local daemon.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2ekit import BUSYBOX, Project, managed_containers, remove_containers, sleeping_run
from prefectkit import mirror, wait_job_task_running

from cicd_cli.daemon import read_state, state_path, stop_daemon

SECRET = "kill9-" + uuid.uuid4().hex  # unique: found anywhere, it came from this test
SLEEPER = f"""\
pipeline: {{name: sleeper, stages: [one, two], image: {BUSYBOX}}}
jobs:
  - {{name: nap, stage: one, script: ['echo "token=$TOKEN"', "sleep 60"]}}
  - {{name: after, stage: two, script: "echo after"}}
"""


@pytest.fixture
def daemon_project(tmp_path: Path, prefect_api: str) -> Iterator[Project]:
    """A project whose ``cicd run`` goes through the daemon, with ``TOKEN`` in its environment."""
    made = Project.create(tmp_path)
    del made.env["CICD_DAEMON"]
    made.env["TOKEN"] = SECRET
    made.commit({".pipelines/sleeper.yaml": SLEEPER})
    yield made
    stop_daemon(made.home)


def open_flow_run(home: Path, timeout: float = 60) -> str:
    """The Prefect flow run id of the one open run in ``home``'s store, once it has one (its
    jobs start before its flow run exists: backend/headstart.py)."""
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(home / "cicd.db") as db:
            rows = db.execute(
                "SELECT flow_run_id FROM pipeline_runs WHERE status IN ('PENDING', 'RUNNING')"
            ).fetchall()
        assert len(rows) == 1, rows
        if rows[0][0] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert rows[0][0], rows
    return str(rows[0][0])


def shm_files_with(needle: bytes) -> list[str]:
    """Files of ``/dev/shm`` (memory, but outliving every process) that hold ``needle``."""
    found = []
    for path in Path("/dev/shm").iterdir():
        try:
            if path.is_file() and needle in path.read_bytes():
                found.append(path.name)
        except OSError:
            continue  # another session's file, gone meanwhile
    return found


@pytest.mark.docker
def test_killed_daemon_run_with_secret_leaves_no_container_no_file_and_a_crashed_flow_run(
    daemon_project: Project,
) -> None:

    project = daemon_project
    with sleeping_run(project, "-p", "sleeper", "--secret", "TOKEN") as run:
        proc, ours = run.proc, run.containers
        flow_run_id = open_flow_run(project.home)
        # killed once the flow runs the job: its subflow and task are in Prefect to be crashed
        wait_job_task_running(flow_run_id, "nap")
        info = read_state(state_path(project.home))
        assert info is not None
        os.kill(int(info["pid"]), signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
    try:
        assert proc.returncode == 1, rest
        shown = [line.partition(" | ")[2] for line in run.seen if line.startswith("nap ")]
        assert "token=****" in shown and SECRET not in "\n".join(run.seen) + rest

        settled = project.cicd("report", "-p", "sleeper", "--run", "1", "--format", "json")

        assert settled.returncode == 0, settled.stderr
        assert json.loads(settled.stdout)["status"] == "FAILED"
        left = managed_containers() & ours
        assert left == set(), "the killed daemon's containers were not removed"
    finally:
        remove_containers(managed_containers() & ours)
    assert shm_files_with(SECRET.encode()) == []
    root, subflows, tasks = mirror(flow_run_id)
    assert root.state is not None and root.state.type.value == "CRASHED", root.state
    assert [(f.name, state_of(f)) for f in subflows] == [("sleeper#1/one", "CRASHED")]
    # the job's task, and the task Prefect keeps in the pipeline's flow run for the subflow
    assert sorted((t.name.rpartition("-")[0], state_of(t)) for t in tasks) == [
        ("cicd-stage", "CRASHED"),
        ("nap", "CRASHED"),
    ]


def state_of(run: Any) -> str | None:
    """The state type of a Prefect flow or task run, as text."""
    return run.state_type.value if run.state_type else None
