"""Ctrl-C and SIGTERM on a running ``cicd run``: it ends quickly and leaves nothing behind.

``cicd run`` starts as a real process; once a ``sleep 60`` job is running in its container the
test signals that process alone, then checks the exit, the containers, the workspace and the
run's recorded status.
"""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
from e2ekit import (
    SLEEPERS,
    Project,
    jobs,
    managed_containers,
    sleeping_run,
)

pytestmark = pytest.mark.docker

EXIT_WITHIN = 15.0


@pytest.mark.docker
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_run_signal_cancels_run_and_cleans_up(project: Project, signum: signal.Signals) -> None:
    project.commit({".pipelines/pipeline.yaml": SLEEPERS})
    with sleeping_run(project, settle=0.5) as run:  # settle: the sibling's container starts too
        proc, seen, ours = run.proc, run.seen, run.containers
        assert ours, "no labelled container while the job runs"
        assert project.workspaces() != [], "no workspace while the run runs"
        started = time.monotonic()
        proc.send_signal(signum)
        try:
            rest, _ = proc.communicate(timeout=EXIT_WITHIN)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"cicd run still running {EXIT_WITHIN}s after {signum.name}:\n"
                + "\n".join(seen)
            ) from None
        took = time.monotonic() - started
    output = "\n".join(seen) + "\n" + rest
    assert took < EXIT_WITHIN, output
    assert proc.returncode != 0, output
    assert "Traceback" not in output, output
    assert "woke-" not in output.replace("echo woke-", "") and "ran-after" not in output
    assert managed_containers() & ours == set(), output
    assert project.workspaces() == [], output
    report = project.report("sleepers", 1)
    assert report["status"] == "CANCELED", report
    assert report["finished_at"] is not None
    assert {name: job["status"] for name, job in jobs(report).items()} == {
        "nap1": "CANCELED",
        "nap2": "CANCELED",
        "after": "CANCELED",
    }
