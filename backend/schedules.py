"""``cicd schedule``: pipelines that run on a cron schedule, as Prefect deployments.

A schedule is a deployment of the flow ``prefect.yaml`` deploys (``flows/deployment.py``,
``cicd-deployment``) with one cron schedule, the repository, branch and pipeline as parameters,
``source: schedule`` (CI_PIPELINE_SOURCE) and the tag ``cicd-schedule``. Prefect's scheduler
creates its flow runs and the workers of its pool (``cicd worker --pool``) execute them, so it
shows in the Prefect UI like any deployment; deployments of ``prefect.yaml`` are not touched.
The cron expression is checked by Prefect's own ``CronSchedule`` (croniter syntax).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from backend.errors import NotFound, UsageError

FLOW = "cicd-deployment"
ENTRYPOINT = "flows/deployment.py:run_repository"
TAG = "cicd-schedule"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
ROOT = Path(__file__).resolve().parent.parent  # holds flows/ (a checkout or site-packages)


@dataclass(frozen=True)
class Schedule:
    """One schedule as Prefect holds it."""

    name: str
    cron: str
    timezone: str
    repo: str
    branch: str | None
    pipeline: str | None
    pool: str | None
    active: bool
    next_run: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        """The schedule as ``cicd schedule list --format json`` prints it."""
        return {
            "name": self.name, "cron": self.cron, "timezone": self.timezone, "repo": self.repo,
            "branch": self.branch, "pipeline": self.pipeline, "pool": self.pool,
            "active": self.active,
            "next_run": self.next_run.isoformat() if self.next_run else None,
        }


def check_name(name: str) -> str:
    """``name`` if it can name a schedule; UsageError otherwise."""
    if not NAME.fullmatch(name):
        raise UsageError(
            f"schedule name {name[:80]!r}: 1 to 63 letters, digits, '.', '_' or '-', starting "
            "with a letter or digit"
        )
    return name


def cron_schedule(cron: str, timezone: str = "UTC") -> Any:
    """Prefect's ``CronSchedule`` of ``cron``; UsageError with one line when it is not valid."""
    from prefect.client.schemas.schedules import CronSchedule
    from pydantic import ValidationError

    try:
        return CronSchedule(cron=cron, timezone=timezone)
    except ValidationError as exc:
        reason = exc.errors()[0].get("msg", "invalid").removeprefix("Value error, ")
        raise UsageError(f"--cron {cron!r} (timezone {timezone}): {reason}") from None


def check_repo(repo: str, cwd: Path) -> str:
    """The repository as the workers will fetch it: a URL as given, a path made absolute."""
    from backend.source.urls import is_url

    if is_url(repo):
        return repo
    path = (cwd / repo).expanduser().resolve()
    if not path.is_dir():
        raise UsageError(f"--repo {repo}: neither a URL nor a folder")
    return str(path)


def _client() -> Any:
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def _find(client: Any, name: str) -> Any | None:
    from prefect.exceptions import ObjectNotFound

    try:
        return client.read_deployment_by_name(f"{FLOW}/{name}")
    except ObjectNotFound:
        return None


def add(
    name: str,
    *,
    cron: str,
    repo: str,
    branch: str | None = None,
    pipeline: str | None = None,
    pool: str = "cicd",
    timezone: str = "UTC",
) -> Schedule:
    """Create schedule ``name`` (UsageError when one of that name exists, even prefect.yaml's),
    and its work pool ``pool`` when there is none yet (as ``cicd worker`` does)."""
    from prefect.client.schemas.actions import DeploymentScheduleCreate

    from backend.engines import ensure_work_pool

    check_name(name)
    schedule = cron_schedule(cron, timezone)
    parameters: dict[str, Any] = {"repo": repo, "source": "schedule"}
    if branch is not None:
        parameters["branch"] = branch
    if pipeline is not None:
        parameters["pipeline"] = pipeline
    with _client() as client:
        if _find(client, name) is not None:
            raise UsageError(f"a schedule (or deployment) named '{name}' exists: remove it first")
        ensure_work_pool(pool)
        flow_id = client.create_flow_from_name(FLOW)
        client.create_deployment(
            flow_id=flow_id,
            name=name,
            description=f"cicd schedule: {cron} ({timezone}) on {repo}",
            entrypoint=ENTRYPOINT,
            path=str(ROOT),
            pull_steps=[
                {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
            ],
            parameters=parameters,
            schedules=[DeploymentScheduleCreate(schedule=schedule, active=True)],
            work_pool_name=pool,
            tags=[TAG],
        )
    return Schedule(name, cron, timezone, repo, branch, pipeline, pool, True)


def _schedule(client: Any, deployment: Any) -> Schedule:
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    cron, timezone, active = "", "UTC", False
    if deployment.schedules:
        first = deployment.schedules[0]
        cron = getattr(first.schedule, "cron", "") or ""
        timezone = getattr(first.schedule, "timezone", None) or "UTC"
        active = bool(first.active)
    upcoming = client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
        ),
        sort=FlowRunSort.EXPECTED_START_TIME_ASC,
        limit=1,
    )
    parameters = deployment.parameters or {}
    return Schedule(
        name=deployment.name,
        cron=cron,
        timezone=timezone,
        repo=str(parameters.get("repo", "")),
        branch=parameters.get("branch"),
        pipeline=parameters.get("pipeline"),
        pool=deployment.work_pool_name,
        active=active,
        next_run=upcoming[0].expected_start_time if upcoming else None,
    )


def list_schedules() -> list[Schedule]:
    """Every schedule ``cicd schedule add`` made, by name."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags

    with _client() as client:
        deployments = client.read_deployments(
            deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=[TAG]))
        )
        return sorted((_schedule(client, d) for d in deployments), key=lambda s: s.name)


def remove(name: str) -> None:
    """Delete schedule ``name`` and its scheduled runs; NotFound when there is none (a
    deployment of prefect.yaml is not a schedule: ``prefect deployment delete`` removes it)."""
    check_name(name)
    with _client() as client:
        deployment = _find(client, name)
        if deployment is None or TAG not in (deployment.tags or []):
            raise NotFound(f"no schedule named '{name}' (cicd schedule list shows them)")
        client.delete_deployment(deployment.id)


def deployment_id(name: str) -> Any:
    """The Prefect deployment id of schedule ``name`` (to run it now, or watch it)."""
    with _client() as client:
        deployment = _find(client, check_name(name))
        if deployment is None or TAG not in (deployment.tags or []):
            raise NotFound(f"no schedule named '{name}' (cicd schedule list shows them)")
        return deployment.id
