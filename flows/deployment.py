"""The flow ``prefect.yaml`` deploys: run a repository's pipeline on a schedule or a trigger.

A Prefect worker picks the flow run up and executes it like ``cicd run --repo``: the committed
pipeline file is validated, the run is started and executed through ``Service`` as every run is,
recorded in this worker's history store (``CICD_HOME``, ``CICD_DATABASE_URL``), as the usual
``NAME#N`` flow run, here as a subflow.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.states import Completed, Failed, State

from backend.requests import prepare_run
from backend.schemas import Status
from backend.service import PipelineSource, Service
from backend.settings import Settings


@flow(name="cicd-deployment", persist_result=False)
def run_repository(
    repo: str,
    branch: str | None = None,
    commit: str | None = None,
    file: str | None = None,
    pipeline: str | None = None,
    overrides: list[str] | None = None,
    force: bool = False,
    source: PipelineSource = "push",
) -> State[str]:
    """Run the pipeline ``file`` (or the one named ``pipeline``) of ``repo`` at its branch tip.

    ``source`` is CI_PIPELINE_SOURCE: a ``cicd schedule`` deployment passes ``schedule``.
    """
    settings = Settings()
    prepared = prepare_run(
        cwd=Path.cwd(), cache_dir=settings.home / "repos", repo=repo, branch=branch,
        commit=commit, file=file, name=pipeline, overrides=overrides, force=force,
        pipeline_source=source,
    )
    service = Service(settings, mode="worker")
    service.reconcile()
    submission = service.start(prepared.request, prepared.source)
    if submission.duplicate:
        return Completed(message=f"{submission.name} is already running", data=submission.name)
    status = service.execute(submission)
    message = f"{submission.name} {status.value}"
    if status in (Status.SUCCESS, Status.SKIPPED):  # skipped: nothing had to run, nothing failed
        return Completed(message=message, data=submission.name)
    return Failed(message=message, data=submission.name)
