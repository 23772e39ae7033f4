"""A run's jobs on a time axis: when each started and ended, what it waited for, and the
critical path, the chain of jobs that set the run's wall time.

Pure: built from a recorded run (``RunPublic``) and, when known, each job's ``needs``; the
terminal chart (``cicd report --graph``), the SVG picture and the Prefect artifact all draw
from a ``Timeline``. What a job may have waited for:

- every job of the earlier stages (a GitLab job with ``needs`` may start before its stage, once
  they succeeded: the earlier jobs that ended after it started are not what it waited for);
- and its ``needs`` in its own stage, when it declared them;
- when no job of the run has needs recorded (none declared any, or the run is from before they
  were recorded), every other job of its own stage: the times decide (a job that started after
  a job of its own stage ended was waiting for it: for a free slot under ``--jobs``, or by
  ``needs`` that were not recorded).

Of those, the one that ended last before the job started is what it *waited for*; its wait is
the time from that end (or, waiting for nothing, from its stage's start) to its own start. The
critical path walks back from the job that ended last through what each job waited for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from backend.schemas import RunPublic, Status

EPSILON = 0.001  # seconds: an end recorded this much after a start still came before it
EARLIER = 1.0  # seconds: a job that started this much before its run is from an earlier run
UNRECORDED = object()  # needs not recorded for the run (its job rows have no such field)


@dataclass(frozen=True)
class Bar:
    """One job on the time axis; times are seconds after the run started (None: never)."""

    job: str
    stage: str
    status: Status
    start: float | None
    end: float | None
    ready: float | None = None  # when what it waited for was done
    waited_for: str | None = None  # the job whose end it waited for last
    critical: bool = False

    @property
    def duration(self) -> float | None:
        """Seconds it ran, None when it did not both start and end."""
        if self.start is None or self.end is None:
            return None
        return max(0.0, self.end - self.start)

    @property
    def wait(self) -> float | None:
        """Seconds between what it waited for being done and its own start."""
        if self.start is None or self.ready is None:
            return None
        return max(0.0, self.start - self.ready)


@dataclass(frozen=True)
class Timeline:
    """A run's jobs, stage by stage, on one time axis starting at the run's start."""

    name: str  # NAME#N
    status: Status
    wall: float  # seconds from the run's start to the last job's (or the run's) end
    stages: list[tuple[str, list[Bar]]]
    critical_path: list[str] = field(default_factory=list)

    @property
    def bars(self) -> list[Bar]:
        """Every job, stage by stage, in plan order."""
        return [bar for _, bars in self.stages for bar in bars]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``cicd report --graph --format json``."""
        return {
            "run": self.name,
            "status": self.status.value,
            "wall_seconds": _round(self.wall),
            "critical_path": list(self.critical_path),
            "stages": [
                {
                    "name": stage,
                    "jobs": [
                        {
                            "name": bar.job,
                            "status": bar.status.value,
                            "start_seconds": _round(bar.start),
                            "end_seconds": _round(bar.end),
                            "wait_seconds": _round(bar.wait),
                            "waited_for": bar.waited_for,
                            "critical": bar.critical,
                        }
                        for bar in bars
                    ],
                }
                for stage, bars in self.stages
            ],
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def recorded_needs(run: RunPublic) -> Mapping[str, Sequence[str] | None] | None:
    """Each job's recorded ``needs`` (None: no ``needs`` keyword), or None when no job of the
    run has any recorded."""
    jobs = [job for stage in run.stages for job in stage.jobs]
    return _known({job.name: getattr(job, "needs", None) for job in jobs})


def _known(
    needs: Mapping[str, Sequence[str] | None] | None,
) -> Mapping[str, Sequence[str] | None] | None:
    """``needs``, or None when it holds no list at all (then the times decide)."""
    if needs is None or all(value is None for value in needs.values()):
        return None
    return needs


def build_timeline(
    run: RunPublic,
    needs: Mapping[str, Sequence[str] | None] | None = None,
    now: datetime | None = None,
) -> Timeline:
    """The timeline of ``run``; ``needs`` maps each job to its needs (see the module's text),
    default: what the run recorded. A run still going ends its axis at ``now`` (when given),
    so its running jobs' bars reach it. A job that started before the run did (one carried over
    from an earlier run) has no bar: its times belong to that run's axis."""
    needs = recorded_needs(run) if needs is None else _known(needs)
    times = [
        t
        for stage in run.stages
        for job in stage.jobs
        for t in (_utc(job.started_at), _utc(job.finished_at))
        if t is not None
    ]
    origin = _utc(run.started_at) or (min(times) if times else None)

    def offset(value: datetime | None) -> float | None:
        value = _utc(value)
        if value is None or origin is None:
            return None
        return (value - origin).total_seconds()

    raw: list[tuple[int, Bar, float | None]] = []  # (stage index, bar, stage start)
    for index, stage in enumerate(run.stages):
        stage_start = offset(stage.started_at)
        for job in stage.jobs:
            start, end = offset(job.started_at), offset(job.finished_at)
            if start is not None and start < -EARLIER:
                start = end = None
            raw.append((index, Bar(job.name, stage.name, job.status, start, end), stage_start))
    ended = {bar.job: (index, bar) for index, bar, _ in raw}
    bars: dict[str, Bar] = {}
    for index, bar, stage_start in raw:
        candidates = _candidates(bar, index, needs, ended)
        bars[bar.job] = _waited(bar, candidates, stage_start)
    path = critical_path(list(bars.values()))
    on_path = set(path)
    staged: list[tuple[str, list[Bar]]] = []
    for stage in run.stages:
        staged.append(
            (
                stage.name,
                [_replace(bars[job.name], critical=job.name in on_path) for job in stage.jobs],
            )
        )
    ends = [bar.end for bar in bars.values() if bar.end is not None]
    run_end = offset(run.finished_at)
    if run_end is None and not run.status.finished and now is not None:
        run_end = offset(now)
    wall = max([*ends, *([run_end] if run_end is not None else []), 0.0])
    return Timeline(f"{run.pipeline}#{run.run}", run.status, wall, staged, path)


def _candidates(
    bar: Bar,
    index: int,
    needs: Mapping[str, Sequence[str] | None] | None,
    ended: Mapping[str, tuple[int, Bar]],
) -> list[Bar]:
    """The jobs ``bar`` may have waited for (see the module's text)."""
    earlier = [other for i, other in ended.values() if i < index]
    if needs is None:  # not recorded: its own stage's too; the times decide
        return earlier + [o for i, o in ended.values() if i == index and o.job != bar.job]
    own = [ended[name] for name in needs.get(bar.job) or () if name in ended]
    return earlier + [other for i, other in own if i == index and other.job != bar.job]


def _waited(bar: Bar, candidates: list[Bar], stage_start: float | None) -> Bar:
    """``bar`` with what it waited for: the candidate that ended last before it started
    (none: its stage's start, or the run's)."""
    if bar.start is None:
        return bar
    start = bar.start
    before = [c for c in candidates if c.end is not None and c.end <= start + EPSILON]
    if before:
        last = max(before, key=lambda c: c.end or 0.0)
        return _replace(bar, ready=min(start, last.end or 0.0), waited_for=last.job)
    return _replace(bar, ready=min(start, stage_start if stage_start is not None else 0.0))


def _replace(bar: Bar, **changes: Any) -> Bar:
    from dataclasses import replace

    return replace(bar, **changes)


def critical_path(bars: Sequence[Bar]) -> list[str]:
    """The chain of jobs that set the wall time: from the job that ended last, back through
    what each job waited for; first job first. Empty when no job ended."""
    by_name = {bar.job: bar for bar in bars}
    finished = [bar for bar in bars if bar.end is not None]
    if not finished:
        return []
    current: Bar | None = max(finished, key=lambda bar: bar.end or 0.0)
    chain: list[str] = []
    while current is not None and current.job not in chain:
        chain.append(current.job)
        current = by_name.get(current.waited_for) if current.waited_for else None
    return chain[::-1]


def cells(bar: Bar, wall: float, width: int) -> tuple[int, int, int] | None:
    """Where ``bar`` falls on an axis of ``width`` cells spanning ``wall`` seconds:
    (wait from, run from, run to), cell indexes, ``to`` exclusive; None when it never started.

    A job that ran is at least one cell wide.
    """
    if bar.start is None:
        return None
    scale = width / wall if wall > 0 else 0.0

    def cell(seconds: float) -> int:
        return max(0, min(width, round(seconds * scale)))

    begin = min(cell(bar.start), width - 1)
    end = max(begin + 1, cell(bar.end if bar.end is not None else wall))
    ready = cell(bar.ready) if bar.ready is not None else begin
    return min(ready, begin), begin, min(end, width)


def seconds_text(value: float | None) -> str:
    """``0.52s``, ``12.30s``, ``2m05s``; empty when unknown."""
    if value is None:
        return ""
    if value < 60:
        return f"{value:.2f}s"
    minutes, secs = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
