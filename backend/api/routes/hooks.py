"""``/hooks/gitlab`` and ``/hooks/github``: pushes and merge requests start the repo's pipelines.

No bearer token here: a delivery proves it knows ``CICD_WEBHOOK_SECRET`` (backend/webhooks.py).
Answers: 202 with the runs started; 200 for an event that starts nothing (``ignored``) or a
delivery seen before (``duplicate: true``, the runs it started then); 401 for a missing or wrong
signature; 403 for a repository not in ``CICD_ALLOWED_REPOS``; 404 when the server has no
webhook secret; 413 for a body over the limit; 400 for a body that is not the event's JSON.
Each delivery id, and each body's hash, is remembered in the history store (the newest 10,000),
so a redelivery, or a captured delivery replayed under a new id, never starts a second run, also
after a restart.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from pydantic import BaseModel, Field

from backend.api.deps import get_launcher, get_settings
from backend.api.launcher import RunLauncher
from backend.api.schemas import ERRORS, ErrorPublic
from backend.errors import CicdError
from backend.service import RunRequest, Submission
from backend.settings import Settings
from backend.webhooks import (
    GITHUB,
    GITLAB,
    MAX_DELIVERIES,
    MAX_HOOK_BODY,
    BadPayload,
    BadSignature,
    HookEvent,
    HooksOff,
    RepoRefused,
    body_key,
    check_github_signature,
    check_gitlab_token,
    check_repo,
    delivery_id,
    parse_github,
    parse_gitlab,
    require_secret,
    start_runs,
)

log = logging.getLogger("cicd.server")
router = APIRouter(
    prefix="/hooks",
    tags=["webhooks"],
    responses={
        **ERRORS,
        401: {"model": ErrorPublic, "description": "Missing or wrong signature"},
        403: {"model": ErrorPublic, "description": "A repository not in CICD_ALLOWED_REPOS"},
        404: {"model": ErrorPublic, "description": "Webhooks are off (no CICD_WEBHOOK_SECRET)"},
        413: {"model": ErrorPublic, "description": "A body over the limit"},
    },
)


class SkippedPublic(BaseModel):
    """A pipeline file of the commit that started no run, and why."""

    file: str
    reason: str


class HookPublic(BaseModel):
    """What a delivery did."""

    provider: str = Field(description="gitlab or github")
    event: str
    delivery: str
    duplicate: bool = Field(
        default=False, description="true when this delivery was handled before: nothing ran again"
    )
    ignored: str | None = Field(default=None, description="why the event starts nothing")
    runs: list[str] = Field(default_factory=list, description="the runs started, NAME#N")
    skipped: list[SkippedPublic] = Field(default_factory=list)


def launch_run(launcher: RunLauncher, request: RunRequest) -> Submission:
    """Start one run of a webhook (or schedule): the same path ``POST /runs`` takes."""
    return launcher.submit(request)


def _http(exc: CicdError) -> HTTPException:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, BadSignature):
        return HTTPException(status.HTTP_401_UNAUTHORIZED, text)
    if isinstance(exc, RepoRefused):
        return HTTPException(status.HTTP_403_FORBIDDEN, text)
    if isinstance(exc, HooksOff):
        return HTTPException(status.HTTP_404_NOT_FOUND, text)
    return HTTPException(status.HTTP_400_BAD_REQUEST, text)


async def _body(request: Request, settings: Settings) -> bytes:
    """The raw body, read with a cap (413 beyond it, before reading when the length says so)."""
    limit = min(settings.max_upload_bytes, MAX_HOOK_BODY)
    too_large = HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE, f"the delivery is larger than the server takes ({limit} "
        "bytes)"
    )
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise too_large
    return bytes(body)


def _payload(request: Request, body: bytes) -> Any:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            "send the event as application/json (GitHub: Content type application/json)",
        )
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the body is not JSON") from None


def _handle(
    provider: str,
    hook: HookEvent,
    keys: list[str],
    launcher: RunLauncher,
    settings: Settings,
) -> HookPublic:
    """Everything after the signature (blocking: git, the store): runs started or why not.

    ``keys`` are the delivery id and the body's hash: a delivery is a duplicate when either was
    seen (a redelivery has both; a replay under a new id, the body's).
    """
    delivery = keys[0]
    answer = HookPublic(provider=provider, event=hook.event, delivery=delivery)
    if hook.ignored is not None:
        return answer.model_copy(update={"ignored": hook.ignored})
    check_repo(hook, settings.allowed_repos)
    store = launcher.service.store
    claimed: list[str] = []
    for key in dict.fromkeys(keys):
        earlier = store.claim_delivery(provider, key, MAX_DELIVERIES)
        if earlier is not None:
            for mine in claimed:  # the same runs under every key
                store.settle_delivery(provider, mine, earlier)
            return answer.model_copy(update={"duplicate": True, "runs": earlier})
        claimed.append(key)
    try:
        started = start_runs(
            hook, home=settings.home, launch=lambda request: launch_run(launcher, request)
        )
    except BaseException:
        for key in claimed:  # nothing ran: a redelivery may try again
            store.settle_delivery(provider, key, None)
        raise
    names = [run.name for run in started.runs]
    for key in claimed:
        store.settle_delivery(provider, key, names if names else None)
    log.info("%s %s %s at %s: started %s", provider, hook.event, delivery, hook.commit[:12],
             ", ".join(names) or "nothing")
    return answer.model_copy(update={
        "runs": names,
        "skipped": [SkippedPublic(file=file, reason=why) for file, why in started.skipped],
    })


async def _serve(
    provider: str, request: Request, response: Response, launcher: RunLauncher,
    settings: Settings,
) -> HookPublic:
    headers = request.headers
    try:
        if provider == GITLAB:  # the token is a header: checked before the body is read
            check_gitlab_token(headers.get("x-gitlab-token"), settings.webhook_secret)
            body = await _body(request, settings)
            given = headers.get("x-gitlab-event-uuid") or headers.get("idempotency-key")
            hook = parse_gitlab(headers.get("x-gitlab-event"), _payload(request, body))
        else:
            require_secret(settings.webhook_secret)
            body = await _body(request, settings)
            check_github_signature(body, headers.get("x-hub-signature-256"),
                                   settings.webhook_secret)
            given = headers.get("x-github-delivery")
            hook = parse_github(headers.get("x-github-event"), _payload(request, body))
        keys = [delivery_id(given, body), body_key(body)]
        answer = await anyio.to_thread.run_sync(_handle, provider, hook, keys, launcher, settings)
    except (BadSignature, BadPayload, HooksOff, RepoRefused) as exc:
        raise _http(exc) from None
    if answer.runs and not answer.duplicate:
        response.status_code = status.HTTP_202_ACCEPTED
    return answer


@router.post("/gitlab", response_model=HookPublic)
async def gitlab_hook(
    request: Request,
    response: Response,
    launcher: RunLauncher = Depends(get_launcher),
    settings: Settings = Depends(get_settings),
) -> HookPublic:
    """A GitLab webhook (Push events, Merge request events): `X-Gitlab-Token` must be
    CICD_WEBHOOK_SECRET; the delivery id is `X-Gitlab-Event-UUID` (or `Idempotency-Key`)."""
    return await _serve(GITLAB, request, response, launcher, settings)


@router.post("/github", response_model=HookPublic)
async def github_hook(
    request: Request,
    response: Response,
    launcher: RunLauncher = Depends(get_launcher),
    settings: Settings = Depends(get_settings),
) -> HookPublic:
    """A GitHub webhook (push, pull_request; content type application/json):
    `X-Hub-Signature-256` must be the HMAC-SHA256 of the body keyed with CICD_WEBHOOK_SECRET;
    the delivery id is `X-GitHub-Delivery`."""
    return await _serve(GITHUB, request, response, launcher, settings)
