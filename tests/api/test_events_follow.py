"""``EventHub.afollow``: asyncio followers are woken by events published from other threads."""

from __future__ import annotations

import asyncio
import threading
import time

from backend.events import EventHub
from backend.recording import Event
from backend.schemas import Status


def test_events_hub_afollow_wakes_on_news_from_another_thread_and_ends() -> None:
    hub = EventHub()
    hub.open("r#1")

    def publish() -> None:
        time.sleep(0.3)
        hub.publish("r#1", Event("line", "r#1", job="j", text="hello"))
        time.sleep(0.3)
        hub.close("r#1", Status.SUCCESS)

    async def collect() -> list[tuple[str, float]]:
        started, seen = time.monotonic(), []
        async for event in hub.afollow("r#1", wait=5.0):  # news must not wait for the timeout
            assert event is not None
            seen.append((event.kind, time.monotonic() - started))
        return seen

    thread = threading.Thread(target=publish)
    thread.start()
    seen = asyncio.run(collect())
    thread.join()
    assert [kind for kind, _ in seen] == ["line", "run_finished"]
    assert seen[-1][1] < 2.0
    assert hub.job_over("r#1", "j") is True and hub.job_over("other#1", "j") is None


def test_events_hub_afollow_yields_none_while_quiet() -> None:
    hub = EventHub()
    hub.open("r#1")

    async def first() -> Event | None:
        async for event in hub.afollow("r#1", wait=0.05):
            return event
        raise AssertionError("no event")

    assert asyncio.run(first()) is None
