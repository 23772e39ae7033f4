"""``/workers``: what ``cicd worker`` processes of a server's pool call (team mode).

A worker claims a run the server queued on the pool (``cicd server --pool``), fetches its commit
as a git bundle, sends the run's events while it executes, and its logs and artifacts when it
ends. The routes need the API token like every other (workers hold ``CICD_API_TOKEN``); the
events and files of a run are taken only from the worker that claimed it. See
``backend/pool.py`` for the whole exchange.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tarfile
import tempfile
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import Response
from pydantic import BaseModel, Field

from backend.api.deps import get_launcher, get_service, get_settings
from backend.api.launcher import RunLauncher
from backend.api.schemas import ERRORS, NAME_MAX, NAME_PATTERN, PipelineName, RunNumber
from backend.events import event_from_json
from backend.pool import PoolDispatch
from backend.recording import log_path, stamp
from backend.service import Service
from backend.settings import Settings

router = APIRouter(prefix="/workers", tags=["workers"], responses=ERRORS)

MAX_EVENTS_BYTES = 8 * 1024 * 1024  # one batch of events
WorkerName = Annotated[
    str, Query(description="the worker's name", max_length=255, pattern=NAME_PATTERN)
]


class ClaimBody(BaseModel):
    """A worker asks for run ``pipeline#number``."""

    pipeline: str = Field(max_length=NAME_MAX, pattern=NAME_PATTERN)
    number: int = Field(ge=1, le=2**31 - 1)
    worker: str = Field(max_length=255, pattern=NAME_PATTERN)


class ClaimPublic(BaseModel):
    """What a worker needs to execute a claimed run (secrets included: kept in memory only)."""

    run_id: int
    request: dict[str, Any]
    home_key: str = Field(description="the server's CICD_HOME key: a worker with the same one "
                          "shares its files and ships none")


def _dispatch(launcher: RunLauncher) -> PoolDispatch:
    if launcher.dispatch is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "this server has no work pool (--pool)")
    return launcher.dispatch


@router.post("/claim", response_model=ClaimPublic)
def claim(
    body: ClaimBody,
    launcher: RunLauncher = Depends(get_launcher),
    service: Service = Depends(get_service),
) -> ClaimPublic:
    """Take a run queued on this server's pool: once, by one worker (409 otherwise)."""
    handoff = _dispatch(launcher).claim(f"{body.pipeline}#{body.number}", body.worker)
    request = handoff.submission.request
    assert request is not None
    return ClaimPublic(
        run_id=handoff.submission.run_id,
        request=request.model_dump(mode="json"),
        home_key=service.run_key(0).rpartition("-")[0],
    )


@router.get("/runs/{pipeline}/{number}/bundle", response_class=Response)
def bundle(
    pipeline: PipelineName,
    number: RunNumber,
    worker: WorkerName,
    launcher: RunLauncher = Depends(get_launcher),
) -> Response:
    """The claimed run's commit as a git bundle."""
    from backend.source.bundles import make_bundle

    handoff = _dispatch(launcher).claimed(f"{pipeline}#{number}", worker)
    return Response(make_bundle(handoff.source), media_type="application/octet-stream")


@router.post("/runs/{pipeline}/{number}/events", status_code=status.HTTP_204_NO_CONTENT)
async def events(
    pipeline: PipelineName,
    number: RunNumber,
    worker: WorkerName,
    request: Request,
    log: bool = Query(False, description="also append the job lines to this server's logs"),
    launcher: RunLauncher = Depends(get_launcher),
    settings: Settings = Depends(get_settings),
) -> None:
    """A batch of the claimed run's events (NDJSON), for followers and, with ``log``, logs."""
    name = f"{pipeline}#{number}"
    _dispatch(launcher).claimed(name, worker)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_EVENTS_BYTES:
            raise HTTPException(413, "too many events")
    try:
        batch = [event_from_json(json.loads(line)) for line in body.splitlines() if line.strip()]
    except (ValueError, KeyError, TypeError) as exc:
        raise HTTPException(422, f"bad event: {exc}") from None
    batch = [dataclasses.replace(event, run=name) for event in batch]  # its own run only
    if log:
        await anyio.to_thread.run_sync(_append_lines, settings, pipeline, number, batch)
    launcher.ingest(name, batch)


def _append_lines(settings: Settings, pipeline: str, number: int, batch: list[Any]) -> None:
    lines: dict[str, list[str]] = {}
    for event in batch:
        if event.job is not None and event.kind in ("line", "job_started"):
            lines.setdefault(event.job, [])
            if event.kind == "line":
                lines[event.job].append(f"{stamp(event.at)} {event.text or ''}\n")
    for job, texts in lines.items():
        path = log_path(settings.logs_dir, pipeline, number, job)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            handle.writelines(texts)


@router.put("/runs/{pipeline}/{number}/files", status_code=status.HTTP_204_NO_CONTENT)
async def files(
    pipeline: PipelineName,
    number: RunNumber,
    worker: WorkerName,
    request: Request,
    root: str = Query(max_length=4096, description="the worker's CICD_HOME, as its paths say"),
    launcher: RunLauncher = Depends(get_launcher),
    service: Service = Depends(get_service),
    settings: Settings = Depends(get_settings),
) -> None:
    """The claimed run's logs and artifacts (a tar), kept under this server's CICD_HOME."""
    name = f"{pipeline}#{number}"
    handoff = _dispatch(launcher).claimed(name, worker)
    settings.ensure_home()
    with tempfile.TemporaryFile(dir=settings.home) as spool:
        written = 0
        async for chunk in request.stream():
            written += len(chunk)
            if written > settings.max_upload_bytes:
                raise HTTPException(
                    413,
                    f"the run's files exceed CICD_MAX_UPLOAD_BYTES ({settings.max_upload_bytes})",
                )
            spool.write(chunk)
        spool.seek(0)
        run_id = handoff.submission.run_id
        await anyio.to_thread.run_sync(_unpack, spool, settings, pipeline, number, run_id)
    await anyio.to_thread.run_sync(service.store.rehome_files, run_id, root, str(settings.home))


def run_folders(pipeline: str, number: int, run_id: int) -> tuple[PurePosixPath, PurePosixPath]:
    """Where a run's logs and artifacts are, relative to a CICD_HOME (the same on each side)."""
    logs = log_path(Path("logs"), pipeline, number, "x").parent
    return PurePosixPath(logs.as_posix()), PurePosixPath("artifacts", str(int(run_id)))


def _unpack(spool: Any, settings: Settings, pipeline: str, number: int, run_id: int) -> None:
    """Extract regular files and folders of the run's two folders only (a worker's tar is
    checked like any upload: no links, devices, absolute paths or ``..``)."""
    allowed = run_folders(pipeline, number, run_id)
    try:
        with tarfile.open(fileobj=spool, mode="r:*") as archive:
            members = []
            for member in archive.getmembers():
                path = PurePosixPath(member.name)
                if not (member.isfile() or member.isdir()) or not any(
                    path == folder or folder in path.parents for folder in allowed
                ):
                    raise HTTPException(
                        422,
                        f"the run's files hold {member.name[:200]!r}, outside its folders",
                    )
                members.append(member)
            archive.extractall(settings.home, members=members, filter="data")
    except tarfile.TarError as exc:
        raise HTTPException(422, f"bad tar: {exc}") from None
