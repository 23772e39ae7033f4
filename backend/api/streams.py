"""What the streaming routes send: a run's events as NDJSON, a job's log as text lines.

Both are synchronous generators that Starlette iterates in its thread pool; each step returns
within about a second even when nothing happens, so a client that went away frees its thread.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from backend.client import follow_log
from backend.events import EventHub, event_to_json
from backend.recording import Event
from backend.service import Service

POLL_SECONDS = 1.0


def event_lines(
    service: Service, hub: EventHub, pipeline: str, number: int, after: int = 0
) -> Iterator[str]:
    """NDJSON lines of run ``pipeline#number``'s events from index ``after`` to ``run_finished``.

    Checks that the run exists first (NotFound before anything is streamed). A run this process
    does not execute (it finished before the server started, or a worker runs it) is waited for
    in the store and ends with one ``run_finished`` made from its record.
    """
    run = service.run(pipeline, number)
    name = f"{pipeline}#{number}"
    if hub.knows(name):
        return _from_hub(hub, name, after)
    return _from_store(service, pipeline, number, after, finished=run.status.finished)


def _from_hub(hub: EventHub, name: str, after: int) -> Iterator[str]:
    for event in hub.follow(name, after, wait=POLL_SECONDS):
        yield "" if event is None else event_to_json(event) + "\n"


def _from_store(
    service: Service, pipeline: str, number: int, after: int, finished: bool
) -> Iterator[str]:
    while not finished:
        time.sleep(POLL_SECONDS)
        yield ""
        finished = service.run(pipeline, number).status.finished
    run = service.run(pipeline, number)
    if after <= 0:
        kwargs = {"at": run.finished_at} if run.finished_at is not None else {}
        yield event_to_json(
            Event("run_finished", f"{pipeline}#{number}", status=run.status, **kwargs)
        ) + "\n"


def log_lines(
    service: Service, pipeline: str, number: int, job: str, follow: bool = False
) -> Iterator[str]:
    """A job's log lines (``\\n``-terminated); with ``follow``, until the job has finished.

    NotFound (before anything is streamed) for an unknown job, or for a job that never started
    when not following.
    """
    service.job(pipeline, number, job)
    if not follow:
        service.log_file(pipeline, number, job)
    return (line + "\n" for line in follow_log(service, pipeline, number, job, follow))
