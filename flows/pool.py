"""The flow a ``cicd server --pool NAME`` queues for each submitted run: ``cicd-run/NAME``.

A ``cicd worker --pool NAME`` picks the flow run up and executes the run it names
(``backend/worker.py``): claimed from the server, executed here as the usual ``NAME#N`` flow
run (a subflow of this one), its events, logs and artifacts shipped to the server.
"""

from __future__ import annotations

from prefect import flow
from prefect.states import Completed, Failed, State

from backend.schemas import Status
from backend.settings import Settings
from backend.worker import execute_handed_run


@flow(name="cicd-run", persist_result=False)
def execute_submitted(pipeline: str, number: int) -> State[str]:
    """Execute run ``pipeline#number`` that a cicd server handed to this worker's pool."""
    name = f"{pipeline}#{number}"
    status = execute_handed_run(Settings(), pipeline, number)
    if status is None:
        return Completed(message=f"{name}: not for this worker (taken, ended or unknown)")
    message = f"{name} {status.value}"
    if status in (Status.SUCCESS, Status.SKIPPED):
        return Completed(message=message, data=name)
    return Failed(message=message, data=name)
