"""What the streaming routes send: a run's events as NDJSON, a job's log as text lines.

Both are async generators on the event loop: a follower waiting for news is an idle coroutine,
never a worker thread, and store reads and file reads are short ``anyio.to_thread`` calls. A
follower whose client went away is noticed within a poll period and ends. ``Followers`` caps how
many follow at once: beyond the cap a new follower gets 429 instead of exhausting the server.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

import anyio.to_thread
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from backend.errors import NotFound, ServerBusy
from backend.events import EventHub, event_to_json
from backend.recording import Event
from backend.service import Service

POLL_SECONDS = 1.0  # how often an idle stream checks its client and the store
LOG_POLL_SECONDS = 0.2  # how often a followed log file is checked for new bytes
CHUNK = 64 * 1024

Disconnected = Callable[[], Awaitable[bool]]


class Followers:
    """The streams open at once on a server, at most ``limit`` (CICD_MAX_FOLLOWERS)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._count = 0
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        """How many streams are open."""
        return self._count

    def take(self) -> Callable[[], None]:
        """Take a place (ServerBusy when none is left); returns its release, safe to call twice."""
        with self._lock:
            if self._count >= self.limit:
                raise ServerBusy(
                    f"too many log and event streams open ({self.limit}, CICD_MAX_FOLLOWERS): "
                    "try again when some have ended"
                )
            self._count += 1
        released = threading.Event()

        def release() -> None:
            with self._lock:
                if not released.is_set():
                    released.set()
                    self._count -= 1

        return release

    def response(
        self, content: AsyncIterator[str], media_type: str, release: Callable[[], None]
    ) -> StreamingResponse:
        """A streaming response that gives its place back when it ends, however it ends."""
        return _HeldResponse(content, media_type=media_type, release=release)


class _HeldResponse(StreamingResponse):
    def __init__(
        self, content: AsyncIterator[str], *, release: Callable[[], None], **kw: Any
    ) -> None:
        super().__init__(content, **kw)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


def event_lines(
    service: Service,
    hub: EventHub,
    pipeline: str,
    number: int,
    after: int,
    disconnected: Disconnected,
) -> AsyncIterator[str]:
    """NDJSON lines of run ``pipeline#number``'s events from index ``after`` to ``run_finished``.

    Checks that the run exists first (NotFound before anything is streamed). A run this process
    does not execute (it finished before the server started, or a worker runs it) is waited for
    in the store and ends with one ``run_finished`` made from its record.
    """
    run = service.run(pipeline, number)
    name = f"{pipeline}#{number}"
    if hub.knows(name):
        return _from_hub(hub, name, after, disconnected)
    return _from_store(service, pipeline, number, after, run.status.finished, disconnected)


async def _from_hub(
    hub: EventHub, name: str, after: int, disconnected: Disconnected
) -> AsyncIterator[str]:
    async with aclosing(hub.afollow(name, after, wait=POLL_SECONDS)) as events:
        async for event in events:
            if event is not None:
                yield event_to_json(event) + "\n"
            elif await disconnected():
                return


async def _from_store(
    service: Service,
    pipeline: str,
    number: int,
    after: int,
    finished: bool,
    disconnected: Disconnected,
) -> AsyncIterator[str]:
    while not finished:
        await anyio.sleep(POLL_SECONDS)
        if await disconnected():
            return
        run = await anyio.to_thread.run_sync(service.run, pipeline, number)
        finished = run.status.finished
    run = await anyio.to_thread.run_sync(service.run, pipeline, number)
    if after <= 0:
        kwargs: dict[str, Any] = {"at": run.finished_at} if run.finished_at is not None else {}
        yield event_to_json(
            Event("run_finished", f"{pipeline}#{number}", status=run.status, **kwargs)
        ) + "\n"


def log_lines(
    service: Service,
    hub: EventHub,
    pipeline: str,
    number: int,
    job: str,
    follow: bool,
    disconnected: Disconnected,
) -> AsyncIterator[str]:
    """A job's log lines (``\\n``-terminated); with ``follow``, until the job has finished.

    NotFound (before anything is streamed) for an unknown job, or for a job that never started
    when not following.
    """
    service.job(pipeline, number, job)
    if not follow:
        service.log_file(pipeline, number, job)
    return _log(service, hub, pipeline, number, job, follow, disconnected)


class _JobOver:
    """Whether a followed job has finished: from the hub when the run executes here (free),
    else from the store, asked at most once per ``POLL_SECONDS``."""

    def __init__(
        self, service: Service, hub: EventHub, pipeline: str, number: int, job: str
    ) -> None:
        self.service, self.hub = service, hub
        self.pipeline, self.number, self.job = pipeline, number, job
        self._asked = 0.0

    async def __call__(self) -> bool:
        known = self.hub.job_over(f"{self.pipeline}#{self.number}", self.job)
        if known is not None:
            return known
        if time.monotonic() - self._asked < POLL_SECONDS:
            return False
        self._asked = time.monotonic()
        record = await anyio.to_thread.run_sync(
            self.service.job, self.pipeline, self.number, self.job
        )
        return bool(record.status.finished)


def _text(lines: list[bytes]) -> str:
    return "".join(line.decode("utf-8", errors="replace") + "\n" for line in lines)


async def _log(
    service: Service,
    hub: EventHub,
    pipeline: str,
    number: int,
    job: str,
    follow: bool,
    disconnected: Disconnected,
) -> AsyncIterator[str]:
    over = _JobOver(service, hub, pipeline, number, job)
    path = None
    while path is None:
        try:
            path = await anyio.to_thread.run_sync(service.log_file, pipeline, number, job)
        except NotFound:
            if not follow or await over():
                return  # it never started, and never will: an empty log
            await anyio.sleep(POLL_SECONDS)  # a store query each time: not too often
            if await disconnected():
                return
    handle = await anyio.to_thread.run_sync(path.open, "rb")
    try:
        pending = b""
        while True:
            # fstat and tell are cheap syscalls: only reading goes to a thread
            if handle.tell() < os.fstat(handle.fileno()).st_size:
                chunk = await anyio.to_thread.run_sync(handle.read, CHUNK)
                *lines, pending = (pending + chunk).split(b"\n")
                if lines:
                    yield _text(lines)
                continue
            if not follow or await over():
                rest = pending + await anyio.to_thread.run_sync(handle.read)
                if rest:
                    yield _text(rest.removesuffix(b"\n").split(b"\n"))
                return
            await anyio.sleep(LOG_POLL_SECONDS)
            if await disconnected():
                return
    finally:
        handle.close()
