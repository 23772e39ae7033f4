"""The ``Backend`` of a remote cicd server: every call is a request to its ``/api/v1``.

Answers are parsed into the same ``backend.schemas`` objects the local backend returns, so the CLI
prints the same either way. Failures become one-line errors of the tree: ``NotFound`` (404),
``UsageError`` (400), ``ServerError`` for the rest, e.g.
``cannot reach cicd server at http://host:8765: connection refused``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from backend.errors import NotFound, ServerError, UsageError
from backend.events import event_from_json
from backend.recording import Event
from backend.schemas import (
    ArtifactPublic,
    FlakyTestsPublic,
    JobRunPublic,
    PipelinesPublic,
    RunPublic,
    RunsPublic,
    StageRunPublic,
    Status,
)

if TYPE_CHECKING:
    from backend.requests import PreparedRun

API_PREFIX = "/api/v1"
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
STREAM_TIMEOUT = httpx.Timeout(30.0, connect=5.0, read=None)  # a silent job is not an error
RECONNECTS = 3  # an event stream cut mid-run is resumed this many times


def _segment(value: str) -> str:
    return quote(value, safe="")


def _reason(exc: httpx.HTTPError) -> str:
    text = str(exc) or type(exc).__name__
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text.splitlines()[0])
    return text[:1].lower() + text[1:]



PAGE = 1000  # the most a server's list page holds


def _page_size(limit: int | None, have: int) -> int:
    """How many items to ask for in the next page, ``have`` of ``limit`` already read."""
    return PAGE if limit is None else max(1, min(PAGE, limit - have))

class RemoteBackend:
    """A cicd server's API, called with httpx; ``token`` is sent as a bearer token."""

    def __init__(self, url: str, token: str | None = None, *, transport: Any = None) -> None:
        base = url.rstrip("/")
        if base.endswith(API_PREFIX):
            base = base[: -len(API_PREFIX)]
        self.url = base
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(
            base_url=base + API_PREFIX, headers=headers, timeout=TIMEOUT, transport=transport,
            trust_env=False,
            # plain http (the local daemon) has no TLS to verify: skip loading the CA bundle
            # (~15 ms of every command); https URLs are verified as usual
            verify=not base.startswith("http://"),
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    # -- plumbing ---------------------------------------------------------------------------------

    def _run_path(self, pipeline: str, number: int) -> str:
        return f"/runs/{_segment(pipeline)}/{number}"

    def _fail(self, reply: httpx.Response) -> None:
        if reply.is_success:
            return
        try:
            detail = str(reply.json().get("detail"))
        except (ValueError, AttributeError):
            reply.read()
            detail = reply.text.strip().splitlines()[0] if reply.text.strip() else ""
        detail = detail or reply.reason_phrase
        if reply.status_code == 404:
            raise NotFound(detail)
        if reply.status_code == 400:
            raise UsageError(detail)
        if reply.status_code == 401:
            raise ServerError(f"cicd server at {self.url} refused the request: {detail}")
        if reply.status_code == 422:
            raise ServerError(detail)
        raise ServerError(f"cicd server at {self.url} failed (HTTP {reply.status_code}): {detail}")

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            reply = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ServerError(f"cannot reach cicd server at {self.url}: {_reason(exc)}") from None
        self._fail(reply)
        return reply

    def _get(self, path: str, **params: Any) -> Any:
        given = {key: value for key, value in params.items() if value is not None}
        return self._request("GET", path, params=given).json()

    def _stream(self, path: str, params: dict[str, Any]) -> Iterator[str]:
        """The lines of a streamed answer (connection errors become ServerError)."""
        try:
            with self._client.stream("GET", path, params=params, timeout=STREAM_TIMEOUT) as reply:
                if not reply.is_success:
                    reply.read()
                    self._fail(reply)
                yield from reply.iter_lines()
        except httpx.HTTPError as exc:
            raise ServerError(f"cannot reach cicd server at {self.url}: {_reason(exc)}") from None

    # -- Backend ----------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """The server's health report (200 or 503 both answer)."""
        try:
            reply = self._client.get("/health")
        except httpx.HTTPError as exc:
            raise ServerError(f"cannot reach cicd server at {self.url}: {_reason(exc)}") from None
        if reply.status_code not in (200, 503):
            self._fail(reply)
        result: dict[str, Any] = reply.json()
        return result

    def pipelines(self, limit: int | None = None, cursor: str | None = None) -> PipelinesPublic:
        """Pipelines with runs, by name: every one, or at most ``limit`` (pages followed)."""
        found: list[Any] = []
        while True:
            page = PipelinesPublic.model_validate(
                self._get("/pipelines", limit=_page_size(limit, len(found)), cursor=cursor)
            )
            found.extend(page.pipelines)
            cursor = page.next
            if cursor is None or (limit is not None and len(found) >= limit):
                return PipelinesPublic(pipelines=found, next=cursor)

    def runs(self, pipeline: str | None, limit: int | None = None, **filters: Any) -> RunsPublic:
        """Runs newest first, of a pipeline or (None) of every one: all that match, or at most
        ``limit`` (the server's pages followed). ``filters``: cursor, status, branch, since."""
        params = {key: value for key, value in filters.items() if value is not None}
        if "since" in params:
            params["since"] = params["since"].isoformat()
        found: list[Any] = []
        while True:
            page = RunsPublic.model_validate(
                self._get("/runs", pipeline=pipeline, limit=_page_size(limit, len(found)), **params)
            )
            found.extend(page.runs)
            params["cursor"] = page.next
            if page.next is None or (limit is not None and len(found) >= limit):
                return RunsPublic(pipeline=pipeline, runs=found, next=page.next)

    def run(self, pipeline: str, number: int) -> RunPublic:
        """One run with stages and jobs."""
        return RunPublic.model_validate(self._get(self._run_path(pipeline, number)))

    def stage(self, pipeline: str, number: int, stage: str) -> StageRunPublic:
        """One stage of a run."""
        path = f"{self._run_path(pipeline, number)}/stages/{_segment(stage)}"
        return StageRunPublic.model_validate(self._get(path))

    def job(self, pipeline: str, number: int, job: str) -> JobRunPublic:
        """One job of a run."""
        # the name goes in the query: a `/` in it (deploy/staging) cannot be a path segment
        path = f"{self._run_path(pipeline, number)}/job"
        return JobRunPublic.model_validate(self._get(path, job=job))

    def log(self, pipeline: str, number: int, job: str, follow: bool = False) -> Iterator[str]:
        """The job's log lines (timestamped); with ``follow``, until the job ends."""
        path = f"{self._run_path(pipeline, number)}/job/log"
        return self._stream(path, {"job": job, "follow": "true" if follow else "false"})

    def cancel(self, pipeline: str, number: int) -> Status:
        """Ask to cancel a run; its status as it stands after the request."""
        reply = self._request("POST", f"{self._run_path(pipeline, number)}/cancel")
        return Status(reply.json()["status"])

    def flaky(self, pipeline: str, last: int = 50) -> FlakyTestsPublic:
        """Tests of a pipeline that both passed and failed over its ``last`` newest runs."""
        path = f"/pipelines/{_segment(pipeline)}/flaky"
        return FlakyTestsPublic.model_validate(self._get(path, last=last))

    def artifacts(self, pipeline: str, number: int, job: str | None = None) -> list[ArtifactPublic]:
        """Artifacts of a run or of one job."""
        data = self._get(f"{self._run_path(pipeline, number)}/artifacts", job=job)
        return [ArtifactPublic.model_validate(item) for item in data]

    def download_artifact(
        self, pipeline: str, number: int, job: str, path: str, dest: Path
    ) -> None:
        """Write one artifact's bytes to ``dest``."""
        url = f"{self._run_path(pipeline, number)}/artifact"
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".part")
        try:
            params = {"job": job, "path": path}
            with self._client.stream(
                "GET", url, params=params, timeout=STREAM_TIMEOUT
            ) as reply:
                if not reply.is_success:
                    reply.read()
                    self._fail(reply)
                with partial.open("wb") as handle:
                    for chunk in reply.iter_bytes():
                        handle.write(chunk)
        except httpx.HTTPError as exc:
            partial.unlink(missing_ok=True)
            raise ServerError(f"cannot reach cicd server at {self.url}: {_reason(exc)}") from None
        partial.replace(dest)

    # -- runs -------------------------------------------------------------------------------------

    def submit(self, prepared: PreparedRun, bundle: bytes | None) -> dict[str, Any]:
        """Submit a ``PreparedRun`` with a git bundle of its commit.

        Returns ``{pipeline, run, name, duplicate}``.
        """
        files = None
        if bundle:
            files = {"bundle": ("commit.bundle", bundle, "application/octet-stream")}
        reply = self._request(
            "POST", "/runs", data={"request": prepared.request.model_dump_json()}, files=files
        )
        result: dict[str, Any] = reply.json()
        return result

    def events(self, pipeline: str, number: int, after: int = 0) -> Iterator[Event]:
        """The run's events from index ``after`` until its ``run_finished``.

        A stream cut before the end (a proxy, a network blip) is resumed where it stopped.
        """
        path = f"{self._run_path(pipeline, number)}/events"
        seen, retries = after, 0
        while True:
            try:
                for line in self._stream(path, {"after": seen}):
                    if not line.strip():
                        continue
                    event = event_from_json(json.loads(line))
                    seen += 1
                    retries = 0
                    yield event
                    if event.kind == "run_finished":
                        return
            except ServerError:
                if retries >= RECONNECTS:
                    raise
            retries += 1
            time.sleep(0.5 * retries)
            if retries > RECONNECTS:
                raise ServerError(
                    f"cicd server at {self.url} ended the events of {pipeline}#{number} "
                    "before the run finished"
                )
