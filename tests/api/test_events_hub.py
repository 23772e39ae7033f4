"""The event hub keeps memory flat: a bounded window per run, the rest is in the job logs."""

from __future__ import annotations

import pytest

import backend.events as events
from backend.events import EventHub
from backend.recording import Event
from backend.schemas import Status


def _lines(hub: EventHub, run: str, count: int) -> None:
    for i in range(count):
        hub.publish(run, Event("line", run, job="j", text=str(i)))


def test_events_hub_keeps_a_bounded_window_of_a_chatty_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "WINDOW", 100)
    hub = EventHub()
    hub.open("p#1")
    _lines(hub, "p#1", 1000)
    hub.close("p#1", Status.SUCCESS)
    kept = hub._runs["p#1"]
    assert len(kept.events) <= events.KEEP_AFTER_FINISH
    followed = list(hub.follow("p#1", after=0, wait=0.01))
    assert followed[0].kind == "warning" and "no longer kept" in (followed[0].text or "")
    first = 1001 - len(kept.events)  # the kept lines are the last ones, then run_finished
    assert [e.text for e in followed[1:-1]] == [str(i) for i in range(first, 1000)]
    assert followed[-1].kind == "run_finished"


def test_events_hub_follower_inside_the_window_misses_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(events, "WINDOW", 100)
    hub = EventHub()
    hub.open("p#2")
    _lines(hub, "p#2", 50)
    hub.close("p#2", Status.FAILED)
    followed = list(hub.follow("p#2", after=10, wait=0.01))
    assert [e.text for e in followed[:-1]] == [str(i) for i in range(10, 50)]
    assert followed[-1].status is Status.FAILED
