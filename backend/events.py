"""Live events of the runs a server executes, kept in memory for followers to replay and tail.

The server hands ``EventHub.sink_for(name)`` to ``Service.execute`` as a sink; every event of the
run is appended to that run's list, and ``follow`` yields them from any index on, waiting on a
``threading.Condition`` for more until the run's ``run_finished``. Followers that join late
(``cicd run --server`` reconnecting, a second terminal) replay from index 0, so no line is lost.
The API's streams use ``afollow``, its asyncio twin: a follower waiting there holds no thread, so
a hundred quiet followers cost a hundred idle coroutines, not the server's worker threads.

The JSON form of an ``Event`` (``event_to_json``/``event_from_json``) is what the API streams as
NDJSON, one event per line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import OrderedDict
from collections.abc import AsyncGenerator, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import anyio

from backend.recording import Event, Sink
from backend.schemas import Status

KEEP_FINISHED = 50  # finished runs whose events stay in memory for late followers
# Memory stays flat however much a job prints: a running run keeps its last WINDOW events, a
# finished one its last KEEP_AFTER_FINISH; every line is in the job's log file anyway.
WINDOW = 20_000
KEEP_AFTER_FINISH = 1_000


def event_to_json(event: Event) -> str:
    """One event as a JSON object on one line (the ``Event`` fields; ``at`` in ISO 8601)."""
    data: dict[str, Any] = asdict(event)
    data["status"] = event.status.value if event.status is not None else None
    data["at"] = event.at.isoformat()
    return json.dumps(data, separators=(",", ":"))


def event_from_json(data: dict[str, Any]) -> Event:
    """The ``Event`` of one decoded NDJSON line (unknown keys are ignored)."""
    status = data.get("status")
    at = data.get("at")
    return Event(
        kind=data["kind"],
        run=data["run"],
        stage=data.get("stage"),
        job=data.get("job"),
        text=data.get("text"),
        status=Status(status) if status else None,
        exit_code=data.get("exit_code"),
        **({"at": datetime.fromisoformat(at)} if at else {}),
    )


def _dropped(run: str, skipped: int) -> Event:
    text = f"{skipped} earlier events are no longer kept; `cicd logs {run}` has them"
    return Event("warning", run, text=text)


@dataclass
class _RunEvents:
    events: list[Event] = field(default_factory=list)
    base: int = 0  # index (in the run's whole stream) of events[0]; earlier ones were dropped
    finished: bool = False
    finished_jobs: set[str] = field(default_factory=set)  # their log files are complete
    # asyncio followers waiting for news: (their loop, their wake-up event)
    waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(default_factory=set)

    def read(self, index: int) -> tuple[int, int, list[Event], bool, int]:
        """(skipped, index, events from index on, finished, end index); call under the lock."""
        skipped = 0
        if index < self.base:  # a slow or late follower: what was dropped is in the logs
            skipped, index = self.base - index, self.base
        end = self.base + len(self.events)
        return skipped, index, self.events[index - self.base :], self.finished, end

    def wake(self) -> None:
        """Wake every asyncio follower (from any thread)."""
        for loop, event in self.waiters:
            with contextlib.suppress(RuntimeError):  # its loop is closed: nobody waits there
                loop.call_soon_threadsafe(event.set)

    def keep_last(self, count: int) -> None:
        dropped = max(0, len(self.events) - count)
        if dropped:
            del self.events[:dropped]
            self.base += dropped


class EventHub:
    """Every event of the runs executing in this process, by run name (``NAME#N``)."""

    def __init__(self, keep_finished: int = KEEP_FINISHED) -> None:
        self._runs: OrderedDict[str, _RunEvents] = OrderedDict()
        self._keep = keep_finished
        self._cond = threading.Condition()

    def open(self, run: str) -> None:
        """Start keeping the events of ``run`` (before it executes, so followers can wait)."""
        with self._cond:
            self._runs.setdefault(run, _RunEvents())

    def sink_for(self, run: str) -> Sink:
        """The sink that records ``run``'s events here; give it to ``Service.execute``."""
        self.open(run)

        def sink(event: Event) -> None:
            self.publish(run, event)

        return sink

    def publish(self, run: str, event: Event) -> None:
        """Append ``event`` to ``run``'s events and wake its followers."""
        with self._cond:
            entry = self._runs.setdefault(run, _RunEvents())
            if entry.finished:
                return  # nothing follows run_finished
            entry.events.append(event)
            if event.kind == "job_finished" and event.job is not None:
                entry.finished_jobs.add(event.job)
            if len(entry.events) > WINDOW + WINDOW // 10:
                entry.keep_last(WINDOW)  # in chunks, so appending stays cheap
            if event.kind == "run_finished":
                entry.finished = True
                entry.keep_last(KEEP_AFTER_FINISH)
                self._forget_old()
            self._cond.notify_all()
            entry.wake()

    def close(self, run: str, status: Status, text: str | None = None) -> None:
        """End ``run``'s events with a ``run_finished`` unless one came (a run that crashed)."""
        self.publish(run, Event("run_finished", run, status=status, text=text))

    def knows(self, run: str) -> bool:
        """Whether ``run``'s events are kept here."""
        with self._cond:
            return run in self._runs

    def job_over(self, run: str, job: str) -> bool | None:
        """Whether ``job`` of ``run`` has finished (or the run has); None when not kept here."""
        with self._cond:
            entry = self._runs.get(run)
            if entry is None:
                return None
            return entry.finished or job in entry.finished_jobs

    async def afollow(
        self, run: str, after: int = 0, wait: float = 1.0
    ) -> AsyncGenerator[Event | None, None]:
        """``follow`` for asyncio code: the same events, awaited without holding a thread.

        Yields None after each ``wait`` seconds without news. KeyError when the run is not kept.
        """
        loop = asyncio.get_running_loop()
        news = asyncio.Event()
        with self._cond:
            entry = self._runs[run]
            entry.waiters.add((loop, news))
        try:
            index = max(0, after)
            while True:
                # cleared before reading: news published after the read sets it again
                news.clear()
                with self._cond:
                    skipped, index, batch, done, end = entry.read(index)
                if skipped:
                    yield _dropped(run, skipped)
                if not batch and not done:
                    with anyio.move_on_after(wait):
                        await news.wait()
                    if not news.is_set():
                        yield None
                    continue
                for event in batch:
                    yield event
                index += len(batch)
                if done and index >= end:
                    return
        finally:
            with self._cond:
                entry.waiters.discard((loop, news))

    def follow(self, run: str, after: int = 0, wait: float = 1.0) -> Iterator[Event | None]:
        """``run``'s events from index ``after`` until ``run_finished``.

        Yields None after each ``wait`` seconds without news, so a caller streaming to a client
        regains control (to send a keep-alive, or to stop when the client has gone). KeyError
        when the run is not kept here.
        """
        with self._cond:
            entry = self._runs[run]
        index = max(0, after)
        while True:
            with self._cond:
                if index >= entry.base + len(entry.events) and not entry.finished:
                    self._cond.wait(timeout=wait)
                skipped, index, batch, done, end = entry.read(index)
            if skipped:
                yield _dropped(run, skipped)
            if not batch and not done:
                yield None
                continue
            yield from batch
            index += len(batch)
            if done and index >= end:
                return

    def _forget_old(self) -> None:
        finished = [name for name, entry in self._runs.items() if entry.finished]
        for name in finished[: max(0, len(finished) - self._keep)]:
            del self._runs[name]
