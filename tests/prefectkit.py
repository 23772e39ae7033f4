"""Reading a run's mirror in Prefect, for tests that must wait for it.

A run's jobs start before its Prefect flow run has reached them (backend/headstart.py): a test
that needs the flow's stage subflow and job task to exist waits for them with these.
"""

from __future__ import annotations


def job_task_running(flow_run_id: str, job: str) -> bool:
    """Whether the task run of ``job`` in a stage subflow of flow run ``flow_run_id`` is
    RUNNING in Prefect (the flow has adopted or started the job)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
        TaskRunFilter,
        TaskRunFilterFlowRunId,
    )

    with get_client(sync_client=True) as client:
        subflows = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])
            )
        )
        if not subflows:
            return False
        tasks = client.read_task_runs(
            task_run_filter=TaskRunFilter(
                flow_run_id=TaskRunFilterFlowRunId(any_=[f.id for f in subflows])
            )
        )
    return any(
        t.name.rpartition("-")[0] == job and t.state is not None and t.state.is_running()
        for t in tasks
    )
