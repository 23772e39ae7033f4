"""The timeline of a recorded run: waits and the critical path on known timings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from backend.schemas import JobRunPublic, RunPublic, StageRunPublic, Status
from backend.timeline import Bar, build_timeline, cells, critical_path

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def _at(seconds: float | None) -> datetime | None:
    return None if seconds is None else T0 + timedelta(seconds=seconds)


def _job(
    name: str,
    start: float | None,
    end: float | None,
    status: Status = Status.SUCCESS,
) -> JobRunPublic:
    return JobRunPublic(
        name=name,
        status=status,
        allow_failure=False,
        exit_code=0,
        image="busybox",
        started_at=_at(start),
        finished_at=_at(end),
    )


def _run(stages: dict[str, list[JobRunPublic]], end: float) -> RunPublic:
    staged = [
        StageRunPublic(
            name=name,
            status=Status.SUCCESS,
            jobs=jobs,
            started_at=min((j.started_at for j in jobs if j.started_at), default=None),
            finished_at=max((j.finished_at for j in jobs if j.finished_at), default=None),
        )
        for name, jobs in stages.items()
    ]
    return RunPublic(
        pipeline="dag",
        run=4,
        status=Status.SUCCESS,
        commit="0" * 40,
        branch="main",
        started_at=T0,
        finished_at=_at(end),
        worker=None,
        stages=staged,
    )


# a: 0..1; b needs a: 1.1..4.1; c needs a: 1.1..1.6; d needs b, c: 4.2..4.5 (one stage)
DAG = {
    "build": [_job("a", 0.0, 1.0), _job("b", 1.1, 4.1), _job("c", 1.1, 1.6), _job("d", 4.2, 4.5)]
}
NEEDS = {"a": None, "b": ["a"], "c": ["a"], "d": ["b", "c"]}


def test_build_timeline_needs_give_the_critical_path() -> None:
    timeline = build_timeline(_run(DAG, 4.6), NEEDS)
    assert timeline.critical_path == ["a", "b", "d"]
    bars = {bar.job: bar for bar in timeline.bars}
    assert bars["d"].waited_for == "b"
    assert round(bars["d"].wait or 0, 3) == 0.1  # from b's end (4.1) to its start (4.2)
    assert round(bars["c"].wait or 0, 3) == 0.1
    assert bars["a"].wait == 0.0 and bars["a"].waited_for is None
    assert [bar.job for bar in timeline.bars if bar.critical] == ["a", "b", "d"]
    assert timeline.wall == 4.6


def test_build_timeline_without_recorded_needs_uses_times() -> None:
    # no needs recorded: d started after b (the last job of its stage to end before it)
    assert build_timeline(_run(DAG, 4.6)).critical_path == ["a", "b", "d"]


def test_build_timeline_stage_order_when_no_job_declares_needs() -> None:
    run = _run(
        {
            "build": [_job("x", 0.0, 2.0), _job("y", 0.0, 3.0)],
            "test": [_job("u", 3.2, 4.0), _job("v", 3.2, 6.0)],
            "deploy": [_job("w", 6.5, 7.0)],
        },
        7.0,
    )
    none = {name: None for name in "xyuvw"}
    timeline = build_timeline(run, none)
    assert timeline.critical_path == ["y", "v", "w"]
    bars = {bar.job: bar for bar in timeline.bars}
    assert round(bars["w"].wait or 0, 3) == 0.5
    assert round(bars["u"].wait or 0, 3) == 0.2  # from y's end, the last of stage build


def test_build_timeline_needs_job_started_early_waited_for_its_need() -> None:
    # GitLab: b needs only a (an earlier stage) and started once a ended, while slow still ran
    run = _run(
        {
            "build": [_job("a", 0.0, 0.5), _job("slow", 0.0, 2.0)],
            "test": [_job("b", 0.6, 6.0), _job("early", 2.1, 2.5)],
            "deploy": [_job("d", 6.2, 6.5)],
        },
        6.5,
    )
    needs = {"a": None, "slow": None, "b": ["a"], "early": None, "d": ["b"]}
    timeline = build_timeline(run, needs)
    bars = {bar.job: bar for bar in timeline.bars}
    assert (bars["b"].waited_for, bars["early"].waited_for) == ("a", "slow")
    assert round(bars["b"].wait or 0, 3) == 0.1
    assert timeline.critical_path == ["a", "b", "d"]


def test_build_timeline_needs_job_started_with_its_stage_waited_for_the_stage() -> None:
    # b needs only a, yet it started when slow ended (no free slot before, say)
    run = _run(
        {
            "build": [_job("a", 0.0, 0.5), _job("slow", 0.0, 2.0)],
            "test": [_job("b", 2.1, 6.0), _job("early", 2.1, 2.5)],
            "deploy": [_job("d", 6.2, 6.5)],
        },
        6.5,
    )
    needs = {"a": None, "slow": None, "b": ["a"], "early": [], "d": ["b"]}
    timeline = build_timeline(run, needs)
    bars = {bar.job: bar for bar in timeline.bars}
    assert (bars["b"].waited_for, bars["early"].waited_for) == ("slow", "slow")
    assert timeline.critical_path == ["slow", "b", "d"]


def test_build_timeline_nothing_before_waits_from_its_stage_start() -> None:
    run = _run({"build": [_job("x", 0.4, 1.0)]}, 1.0)
    run.stages[0].started_at = _at(0.1)
    bar = build_timeline(run, {"x": []}).bars[0]
    assert bar.waited_for is None and round(bar.wait or 0, 3) == 0.3


def test_build_timeline_skipped_jobs_never_on_the_path() -> None:
    run = _run(
        {
            "build": [_job("a", 0.0, 1.0, Status.FAILED)],
            "test": [_job("t", None, None, Status.SKIPPED)],
        },
        1.0,
    )
    timeline = build_timeline(run, {"a": None, "t": None})
    assert timeline.critical_path == ["a"]
    assert next(b for b in timeline.bars if b.job == "t").wait is None


def test_critical_path_no_finished_job_is_empty() -> None:
    assert critical_path([Bar("a", "s", Status.PENDING, None, None)]) == []


def test_critical_path_cycle_in_waits_stops() -> None:
    bars = [
        Bar("a", "s", Status.SUCCESS, 0, 1, waited_for="b"),
        Bar("b", "s", Status.SUCCESS, 0, 2, waited_for="a"),
    ]
    assert critical_path(bars) == ["a", "b"]


def test_cells_scale_and_minimum_width() -> None:
    bar = Bar("a", "s", Status.SUCCESS, start=5.0, end=5.01, ready=2.5)
    assert cells(bar, 10.0, 40) == (10, 20, 21)
    assert cells(Bar("a", "s", Status.SUCCESS, 0.0, 10.0, ready=0.0), 10.0, 40) == (0, 0, 40)
    assert cells(Bar("a", "s", Status.SKIPPED, None, None), 10.0, 40) is None


def test_build_timeline_running_run_reaches_now() -> None:
    run = _run({"build": [_job("a", 0.0, 2.0), _job("b", 2.5, None, Status.RUNNING)]}, 0)
    run = run.model_copy(update={"status": Status.RUNNING, "finished_at": None})
    timeline = build_timeline(run, now=_at(10.0))
    assert timeline.wall == 10.0
    running = next(bar for bar in timeline.bars if bar.job == "b")
    assert cells(running, timeline.wall, 20) == (4, 5, 20)  # from its start to now
    assert timeline.critical_path == ["a"]


def test_build_timeline_job_from_an_earlier_run_has_no_bar() -> None:
    # a job carried over from an earlier run (a retry) keeps that run's times
    run = _run({"build": [_job("old", -600.0, -590.0), _job("new", 1.0, 5.0)]}, 5.0)
    timeline = build_timeline(run, {"old": None, "new": ["old"]})
    old = next(bar for bar in timeline.bars if bar.job == "old")
    assert (old.start, old.end) == (None, None)
    assert timeline.wall == 5.0
    assert timeline.critical_path == ["new"]
