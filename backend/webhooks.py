"""GitLab and GitHub webhooks: check a delivery's signature, read what it asks for, start runs.

The signature is the credential (the hook routes take no bearer token): GitLab sends the shared
secret itself in ``X-Gitlab-Token``, compared in constant time; GitHub signs the raw body,
``X-Hub-Signature-256: sha256=<HMAC-SHA256 of the body keyed with the secret>``, compared with
``hmac.compare_digest``. The secret is ``CICD_WEBHOOK_SECRET``.

What starts runs (everything else is answered and ignored):

* GitLab ``Push Hook`` (a branch push) and ``Merge Request Hook`` (opened, reopened, or updated
  with new commits);
* GitHub ``push`` (a branch push) and ``pull_request`` (opened, reopened, synchronize).

A push that deletes a branch (``after`` all zeros) or pushes a tag starts nothing. The repository
is the payload's clone URL (GitLab ``project.git_http_url``, or the merge request's source
project; GitHub ``repository.clone_url``, or the pull request's head repository), which must
match ``CICD_ALLOWED_REPOS`` (backend/api/repos.py). Every pipeline of that commit runs: each
``.pipelines/*.yaml``/``*.yml`` file and the ``.gitlab-ci.yml``, with ``CI_PIPELINE_SOURCE``
``push`` or ``merge_request_event``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.errors import CicdError, NotFound, PipelineInvalid, RepoError, ServerBusy, UsageError
from backend.service import PipelineSource, RunRequest, Submission

GITLAB, GITHUB = "gitlab", "github"
ZERO_SHA = re.compile(r"0{40}|0{64}")
SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
DELIVERY = re.compile(r"[A-Za-z0-9._:-]{1,200}")
MAX_DELIVERIES = 10_000  # delivery ids remembered (the newest)
MAX_HOOK_BODY = 10 * 1024 * 1024  # bytes; GitHub caps its payloads at 25 MB, GitLab's are small


class BadSignature(CicdError):
    """The delivery does not prove it knows the webhook secret (HTTP 401)."""


class HooksOff(CicdError):
    """The server has no webhook secret: its hook routes are off (HTTP 404)."""


class RepoRefused(CicdError):
    """The event's repository is not among ``CICD_ALLOWED_REPOS`` (HTTP 403)."""


class BadPayload(UsageError):
    """The delivery's body is not the JSON event it claims to be (HTTP 400)."""


@dataclass(frozen=True)
class HookEvent:
    """What a delivery asks for: pipelines of ``repo`` at ``commit`` (``branch``), or nothing
    (``ignored`` says why)."""

    event: str
    repo: str = ""
    branch: str | None = None
    commit: str = ""
    source: PipelineSource = "push"
    ignored: str | None = None


@dataclass(frozen=True)
class Started:
    """The runs a delivery started, and the pipeline files that started none, with why."""

    runs: list[Submission]
    skipped: list[tuple[str, str]]


# -- signatures ---------------------------------------------------------------------------------


def require_secret(secret: str | None) -> str:
    """The webhook secret; HooksOff when the server has none."""
    if not secret:
        raise HooksOff("webhooks are not enabled on this server (CICD_WEBHOOK_SECRET is unset)")
    return secret


def check_gitlab_token(given: str | None, secret: str | None) -> None:
    """Raise BadSignature unless ``X-Gitlab-Token`` is the secret (compared in constant time)."""
    secret = require_secret(secret)
    if given is None or not hmac.compare_digest(given.encode(), secret.encode()):
        raise BadSignature("missing or wrong X-Gitlab-Token: it must be the webhook's secret")


def github_signature(body: bytes, secret: str) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check_github_signature(body: bytes, given: str | None, secret: str | None) -> None:
    """Raise BadSignature unless ``X-Hub-Signature-256`` is the HMAC-SHA256 of ``body``."""
    expected = github_signature(body, require_secret(secret))
    if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
        raise BadSignature(
            "missing or wrong X-Hub-Signature-256: it must be the HMAC-SHA256 of the body "
            "keyed with the webhook's secret"
        )


def body_key(body: bytes) -> str:
    """What identifies a delivery by its content: the body's SHA-256 (``sha256:<hex>``).

    GitHub's signature does not cover the delivery id header: a captured delivery sent again
    under a new id is the same body, and caught by this key.
    """
    return "sha256:" + hashlib.sha256(body).hexdigest()


def delivery_id(given: str | None, body: bytes) -> str:
    """The delivery's id as sent (a UUID), or for a sender that sends none the body's hash."""
    if given is None or not given.strip():
        return body_key(body)
    if not DELIVERY.fullmatch(given.strip()):
        raise BadPayload("the delivery id must be at most 200 letters, digits and ._:-")
    return given.strip()


# -- payloads -----------------------------------------------------------------------------------


def _field(payload: Any, *path: str) -> Any:
    """``payload[path[0]][path[1]]...``, or None where a level is missing or not an object."""
    value = payload
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _text(payload: Any, *path: str, required: bool = True) -> str | None:
    value = _field(payload, *path)
    if isinstance(value, str) and value and len(value) <= 4096 and value.isprintable():
        return value
    if required:
        raise BadPayload(f"the event has no usable '{'.'.join(path)}'")
    return None


def _commit(payload: Any, *path: str) -> str:
    value = _text(payload, *path) or ""
    if not SHA.fullmatch(value):
        raise BadPayload(f"'{'.'.join(path)}' is not a commit id")
    return value


def _branch_of(ref: str) -> str | None:
    return ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None


def _push(event: str, payload: Any, repo: str) -> HookEvent:
    after = _text(payload, "after") or ""
    ref = _text(payload, "ref") or ""
    if ZERO_SHA.fullmatch(after) or payload.get("deleted") is True:
        return HookEvent(event, ignored=f"{ref} was deleted: nothing to run")
    branch = _branch_of(ref)
    if branch is None:
        return HookEvent(event, ignored=f"{ref} is not a branch: only branch pushes start runs")
    return HookEvent(event, repo, branch, _commit(payload, "after"), "push")


def parse_gitlab(event: str | None, payload: Any) -> HookEvent:
    """What a GitLab delivery (``X-Gitlab-Event``) asks for."""
    if not isinstance(payload, dict):
        raise BadPayload("the body must be a JSON object")
    kind = payload.get("object_kind")
    if event == "Push Hook" or (event is None and kind == "push"):
        return _push("Push Hook", payload, _text(payload, "project", "git_http_url") or "")
    if event == "Merge Request Hook" or (event is None and kind == "merge_request"):
        attributes = _field(payload, "object_attributes")
        action = _field(attributes, "action")
        if action not in ("open", "reopen", "update"):
            return HookEvent("Merge Request Hook", ignored=f"merge request action '{action}'")
        if action == "update" and not _field(attributes, "oldrev"):
            return HookEvent("Merge Request Hook", ignored="merge request update without commits")
        repo = _text(attributes, "source", "git_http_url", required=False) or _text(
            payload, "project", "git_http_url"
        )
        return HookEvent(
            "Merge Request Hook",
            repo or "",
            _text(attributes, "source_branch"),
            _commit(attributes, "last_commit", "id"),
            "merge_request_event",
        )
    shown = str(event or kind)[:100]
    return HookEvent(shown, ignored=f"'{shown}' events start nothing")


def parse_github(event: str | None, payload: Any) -> HookEvent:
    """What a GitHub delivery (``X-GitHub-Event``) asks for."""
    if not isinstance(payload, dict):
        raise BadPayload("the body must be a JSON object")
    if event == "push":
        return _push("push", payload, _text(payload, "repository", "clone_url") or "")
    if event == "pull_request":
        action = payload.get("action")
        if action not in ("opened", "reopened", "synchronize"):
            return HookEvent("pull_request", ignored=f"pull_request action '{action}'")
        head = _field(payload, "pull_request", "head")
        repo = _text(head, "repo", "clone_url", required=False) or _text(
            payload, "repository", "clone_url"
        )
        return HookEvent(
            "pull_request", repo or "", _text(head, "ref"), _commit(head, "sha"),
            "merge_request_event",
        )
    shown = str(event)[:100]
    return HookEvent(shown, ignored=f"'{shown}' events start nothing")


# -- starting runs ------------------------------------------------------------------------------


def pipeline_files(git_dir: Path, commit: str) -> list[str]:
    """Every pipeline file of ``commit``: ``.pipelines/*.yaml``/``*.yml``, then the
    ``.gitlab-ci.yml``, when there are."""
    from backend.pipeline import GITLAB_FILE
    from backend.requests import PIPELINES_DIR
    from backend.source.gitfiles import list_committed, read_committed

    files = [
        path for path in list_committed(git_dir, commit, PIPELINES_DIR)
        if path.endswith((".yaml", ".yml"))
    ]
    try:
        read_committed(git_dir, commit, GITLAB_FILE)
        files.append(GITLAB_FILE)
    except NotFound:
        pass
    return files


def requests_for(hook: HookEvent, git_dir: Path) -> tuple[list[RunRequest], list[tuple[str, str]]]:
    """One run request per pipeline file of the commit; files that start nothing, with why."""
    from backend.pipeline import is_gitlab_file, parse_pipeline
    from backend.requests import gitlab_context, project_name, read_gitlab_committed
    from backend.source.gitfiles import read_committed
    from backend.source.workspace import redact_url

    requests, skipped = [], []
    for path in pipeline_files(git_dir, hook.commit):
        try:
            if is_gitlab_file(path):
                context = gitlab_context(
                    git_dir, hook.commit, hook.branch, hook.repo, {}, hook.source
                )
                text, pipeline = read_gitlab_committed(
                    git_dir, hook.commit, path, name=project_name(hook.repo), context=context
                )
            else:
                text = read_committed(git_dir, hook.commit, path)
                pipeline = parse_pipeline(text, path)
        except (PipelineInvalid, UsageError, NotFound) as exc:
            skipped.append((path, str(exc).splitlines()[0] if str(exc) else "invalid"))
            continue
        if not any(job.run for job in pipeline.jobs):
            skipped.append((path, "no job runs for this event (rules)"))
            continue
        requests.append(
            RunRequest(
                pipeline=pipeline, file=path, file_content=text, repo=redact_url(hook.repo),
                branch=hook.branch, commit=hook.commit, source=hook.source,
            )
        )
    if not requests and not skipped:
        skipped.append(("-", "the commit has no .pipelines/*.yaml and no .gitlab-ci.yml"))
    return requests, skipped


def check_repo(hook: HookEvent, allowed_repos: str | None) -> None:
    """RepoRefused unless the server may fetch the event's repository (CICD_ALLOWED_REPOS)."""
    from backend.api.repos import BUNDLE_HINT, check_allowed

    try:
        check_allowed(hook.repo, allowed_repos)
    except RepoError as exc:  # a webhook cannot send a bundle: the hint is not for it
        raise RepoRefused(str(exc).replace(f"; {BUNDLE_HINT}", "")) from None


def start_runs(
    hook: HookEvent, *, home: Path, launch: Callable[[RunRequest], Submission]
) -> Started:
    """Start every pipeline of the commit ``hook`` names, through ``launch`` (the one way runs
    start: what ``POST /runs`` calls); its repository was allowed (``check_repo``).

    RepoError when the commit cannot be fetched, ServerBusy when the queue takes no run:
    nothing is recorded then. A file that does not validate starts nothing and is listed.
    """
    from backend.source.workspace import resolve_source

    cache = home / "repos"
    cache.mkdir(parents=True, exist_ok=True)
    source = resolve_source(
        hook.repo, hook.branch, hook.commit, cwd=home, cache_dir=cache, local_paths=False
    )
    requests, skipped = requests_for(hook, source.git_dir)
    runs: list[Submission] = []
    for request in requests:
        try:
            runs.append(launch(request))
        except ServerBusy:
            if not runs:
                raise
            skipped.append((request.file, "the server's run queue is full (CICD_MAX_QUEUE)"))
        except CicdError as exc:
            skipped.append((request.file, str(exc).splitlines()[0] if str(exc) else "refused"))
    return Started(runs, skipped)

