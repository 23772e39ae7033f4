"""Work pools for Prefect workers that execute deployed pipeline runs (``prefect.yaml``)."""

from __future__ import annotations

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectNotFound
from prefect.workers.process import ProcessWorker


def ensure_work_pool(name: str) -> bool:
    """Create the process work pool ``name`` unless it exists; True when it was created.

    Through the Python client, which never reaches for the internet (the CLI's
    ``work-pool create`` fetches a collection registry first; PREFECT_NOTES.md).
    """
    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
            return False
        except ObjectNotFound:
            pass
        client.create_work_pool(
            WorkPoolCreate(
                name=name,
                type="process",
                base_job_template=ProcessWorker.get_default_base_job_template(),
            )
        )
        return True


RUN_FLOW = "cicd-run"  # the flow a server hands runs to its pool with (flows/pool.py)
RUN_ENTRYPOINT = "flows.pool:execute_submitted"  # a module path: any installed cicd finds it


def ensure_run_deployment(pool: str) -> str:
    """Create (or update) the deployment ``cicd-run/POOL`` that runs handed to ``pool`` are
    flow runs of; return its id. The worker imports the flow from the installed package, so
    no pull step ties it to this machine's folders."""
    ensure_work_pool(pool)
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name(RUN_FLOW)
        deployment_id = client.create_deployment(
            flow_id=flow_id,
            name=pool,
            description=f"runs submitted to a cicd server, executed by the workers of {pool}",
            entrypoint=RUN_ENTRYPOINT,
            work_pool_name=pool,
            pull_steps=[],
            tags=["cicd-run"],
        )
        return str(deployment_id)


def dispatch_flow_run(deployment_id: str, name: str, pipeline: str, number: int) -> str:
    """Queue a flow run of the run deployment for run ``pipeline#number``; return its id.

    A SQLite Prefect server under load answers 503 ("database is locked") beyond its client's
    own retries: tried again, 5 times over ~15 s, before the run is given up."""
    import time

    from prefect.exceptions import PrefectHTTPStatusError

    for attempt in range(5):
        try:
            with get_client(sync_client=True) as client:
                flow_run = client.create_flow_run_from_deployment(
                    deployment_id,  # type: ignore[arg-type]  # a UUID string is accepted
                    parameters={"pipeline": pipeline, "number": number},
                    name=name,
                )
                return str(flow_run.id)
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code != 503 or attempt == 4:
                raise
            time.sleep(1.0 + attempt)
    raise AssertionError("unreachable")


def cancel_flow_run(flow_run_id: str, message: str) -> None:
    """Cancel a flow run that no worker should start any more (best effort, forced)."""
    from prefect.states import Cancelled

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run_id, Cancelled(message=message), force=True)  # type: ignore[arg-type]
