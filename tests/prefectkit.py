"""Reading a run's mirror in Prefect, for tests that must wait for it.

A run's jobs start before its Prefect flow run has reached them (backend/headstart.py): a test
that needs the flow's stage subflow and job task to exist waits for them with these.
"""

from __future__ import annotations

import time
from typing import Any


def mirror(flow_run_id: str) -> tuple[Any, list[Any], list[Any]]:
    """A run's flow run in Prefect, its stage subflow runs, and the task runs of both (the
    job tasks, and the task Prefect keeps in the run's flow run for each subflow)."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
        TaskRunFilter,
        TaskRunFilterFlowRunId,
    )

    with get_client(sync_client=True) as client:
        root = client.read_flow_run(UUID(flow_run_id))
        subflows = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[root.id])
            )
        )
        tasks = client.read_task_runs(
            task_run_filter=TaskRunFilter(
                flow_run_id=TaskRunFilterFlowRunId(any_=[root.id, *(f.id for f in subflows)])
            )
        )
    return root, subflows, tasks


def job_task_running(flow_run_id: str, job: str) -> bool:
    """Whether the task run of ``job`` in flow run ``flow_run_id``'s stage subflows is RUNNING
    in Prefect (the flow has adopted or started the job)."""
    _, _, tasks = mirror(flow_run_id)
    return any(
        t.name.rpartition("-")[0] == job and t.state is not None and t.state.is_running()
        for t in tasks
    )


def wait_job_task_running(flow_run_id: str, job: str, timeout: float = 60) -> None:
    """Wait until ``job_task_running``; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not job_task_running(flow_run_id, job):
        assert time.monotonic() < deadline, f"the Prefect task of job {job!r} did not run"
        time.sleep(0.2)
