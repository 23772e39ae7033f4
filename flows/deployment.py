"""The flow ``prefect.yaml`` deploys: run a repository's pipeline on a schedule or a trigger.

A Prefect worker picks the flow run up and executes it like ``cicd run --repo``: the committed
pipeline file is validated, the run is started and executed through ``Service`` as every run is,
recorded in this worker's history store (``CICD_HOME``, ``CICD_DATABASE_URL``), as the usual
``NAME#N`` flow run, here as a subflow.

A worker of a team (``CICD_SERVER`` set: a ``cicd worker --pool`` of ``cicd server --pool``)
hands the run to that server instead, as ``cicd run --server`` does, with a bundle of the commit:
the server records it and queues it on its pool, and whichever worker takes it ships its events,
logs and artifacts back, so a scheduled run is seen through the server like every other (its
logs never stay on one worker's disk). This flow run then ends at once with the run's name: it
does not hold a worker slot while the run waits for one (with ``--limit 1`` it would wait for
itself).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.states import Completed, Failed, State

from backend.requests import PreparedRun, prepare_run
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
    if settings.server:
        return hand_to_server(settings, prepared)
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


def hand_to_server(settings: Settings, prepared: PreparedRun) -> State[str]:
    """Submit ``prepared`` to ``CICD_SERVER`` with a bundle of its commit; Completed with the
    run's ``NAME#N`` (the run goes on there: its own ``NAME#N`` flow run shows how it ends)."""
    from backend.remote import RemoteBackend
    from backend.source.bundles import make_bundle
    from backend.tokens import client_token

    assert settings.server is not None
    backend = RemoteBackend(settings.server, token=client_token(settings, settings.server))
    try:
        reply = backend.submit(prepared, make_bundle(prepared.source))
    finally:
        backend.close()
    name = str(reply["name"])
    if reply.get("duplicate"):
        return Completed(message=f"{name} is already running on {settings.server}", data=name)
    return Completed(message=f"{name} submitted to {settings.server}", data=name)
