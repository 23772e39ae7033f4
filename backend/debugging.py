"""Failed jobs kept for ``cicd debug``: where a snapshot goes, its record, and how many stay.

A snapshot is taken by the runner (``JobSpec.snapshot``, ``backend.runner.postmortem``) only
when a job fails: its container committed as the image ``cicd-debug:<id>`` and its workspace
archived into ``CICD_HOME/debug/<id>/workspace.tar``. Once the job's attempts are over, ``keep``
writes the record beside it (``snapshot.json``: pipeline, run, job, image, start directory,
variables without secret values, time) and prunes:

- by default a pipeline keeps the snapshot of its **last failed job** only: a newer one
  replaces the older ones of that pipeline (a run's earlier failed job included);
- a run with ``--keep-failed`` keeps every failed job of it; those are never replaced, only
  bounded like every snapshot: at most ``MAX_SNAPSHOTS`` per ``CICD_HOME``, none older than
  ``MAX_AGE`` (the oldest go first, when a new one is kept);
- ``cicd gc`` removes them all (``remove_all``).

``<id>`` is a hash of the ``CICD_HOME/debug`` folder, the pipeline, the run's number and the
job's name: never the names themselves, which are user input (``../x``, spaces), and distinct
per ``CICD_HOME`` on a shared engine. Bookkeeping of several processes (the daemon, embedded
runs, ``cicd gc``) is serialised by a lock file in that folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the runner is imported when used: cicd_cli imports this module
    from backend.execution import RunContext
    from backend.pipeline.model import Job
    from backend.runner.base import JobResult, JobSpec, SnapshotTarget

MAX_SNAPSHOTS = 20  # per CICD_HOME
MAX_AGE = timedelta(days=7)
IMAGE_REPOSITORY = "cicd-debug"
RECORD = "snapshot.json"
_LOCK = ".lock"
_WARNING = "cicd: warning: no snapshot of the failed job for cicd debug"

ImageRemover = Callable[[str], None]


@dataclass(frozen=True)
class SnapshotRecord:
    """What ``snapshot.json`` says of one kept failed job."""

    id: str
    pipeline: str
    run: int
    job: str
    image: str  # cicd-debug:<id>
    workdir: str  # where the job started: its workspace's mount point
    taken_at: datetime  # when the job ended: newer replaces older
    keep: bool = False  # made by a --keep-failed run: never replaced, only pruned by age/count
    env: dict[str, str] = field(default_factory=dict)  # the job's variables, no secret in them
    secrets: list[str] = field(default_factory=list)  # names only: values are never stored

    def to_json(self) -> str:
        """The record as stored."""
        data: dict[str, Any] = asdict(self)
        data["taken_at"] = self.taken_at.isoformat()
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SnapshotRecord:
        """A stored record; ``ValueError`` (or ``KeyError``/``TypeError``) when it is not one."""
        data = json.loads(text)
        data["taken_at"] = datetime.fromisoformat(data["taken_at"])
        data["run"] = int(data["run"])
        return cls(**data)


def folder_hash(debug_dir: Path) -> str:
    """The label value of every snapshot image of ``debug_dir`` (one per ``CICD_HOME``)."""
    return hashlib.sha256(str(debug_dir.resolve()).encode()).hexdigest()[:12]


def snapshot_id(debug_dir: Path, pipeline: str, run: int, job: str) -> str:
    """The id of job ``job`` of run ``pipeline#run``'s snapshot: hex, never a name."""
    key = json.dumps([str(debug_dir.resolve()), pipeline, int(run), job])
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def target_for(debug_dir: Path, pipeline: str, run: int, job: str) -> SnapshotTarget:
    """Where the runner keeps that job if it fails."""
    from backend.runner.base import LABEL_DEBUG, LABEL_DEBUG_DIR, LABEL_MANAGED, SnapshotTarget

    ident = snapshot_id(debug_dir, pipeline, run, job)
    labels = {
        LABEL_MANAGED: "1",
        LABEL_DEBUG: folder_hash(debug_dir),
        LABEL_DEBUG_DIR: str(debug_dir.resolve()),
    }
    return SnapshotTarget(f"{IMAGE_REPOSITORY}:{ident}", debug_dir / ident, labels)


def target(ctx: RunContext, job: Job) -> SnapshotTarget | None:
    """``JobSpec.snapshot`` for ``job`` of the run; None when the run keeps no snapshots."""
    if ctx.debug_dir is None:
        return None
    return target_for(ctx.debug_dir, ctx.pipeline.name, ctx.recorder.number, job.name)


def keep(
    ctx: RunContext, spec: JobSpec, result: JobResult, line: Callable[[str], None]
) -> None:
    """After a job's last attempt: record the snapshot the runner took, and prune; never raises.

    One of an earlier attempt that the last one did not replace is removed: a snapshot is the
    job's state when it ended.
    """
    made = spec.snapshot
    if made is None:
        return
    try:
        if result.snapshot is None:
            if made.directory.exists():  # an earlier failed attempt's
                discard(made.directory, made.image, image_remover(ctx.runner))
            return
        record = SnapshotRecord(
            id=made.directory.name,
            pipeline=ctx.pipeline.name,
            run=ctx.recorder.number,
            job=spec.job,
            image=made.image,
            workdir=_workdir(),
            taken_at=result.finished_at,
            keep=ctx.keep_failed,
            env=dict(spec.env),
            secrets=sorted(spec.secrets),
        )
        save(made.directory.parent, record, image_remover(ctx.runner))
    except Exception as exc:
        line(f"{_WARNING}: {exc}")


def save(
    debug_dir: Path,
    record: SnapshotRecord,
    remove_image: ImageRemover,
    *,
    now: datetime | None = None,
) -> list[SnapshotRecord]:
    """Write ``record`` (its image and tar are there already) and prune; return what went.

    ``record`` itself goes when a newer snapshot of its pipeline replaced it already.
    """
    with _locked(debug_dir):
        others = [r for r in load_all(debug_dir) if r.id != record.id]
        path = debug_dir / record.id / RECORD
        part = path.with_suffix(".part")
        part.write_text(record.to_json())
        os.replace(part, path)
        doomed = prune([*others, record], record, now or datetime.now(UTC))
        for gone in doomed:
            discard(debug_dir / gone.id, gone.image, remove_image)
    return doomed


def prune(
    records: list[SnapshotRecord],
    new: SnapshotRecord,
    now: datetime,
    *,
    max_count: int = MAX_SNAPSHOTS,
    max_age: timedelta = MAX_AGE,
) -> list[SnapshotRecord]:
    """The snapshots to remove once ``new`` is among ``records`` (pure: nothing is removed).

    Of a pipeline only its newest snapshot made without ``--keep-failed`` stays (``new``
    included: an older one that arrives late is replaced at once); then every snapshot older
    than ``max_age``, and the oldest beyond ``max_count``.
    """
    doomed: list[SnapshotRecord] = []
    replaceable = [r for r in records if r.pipeline == new.pipeline and not r.keep]
    if replaceable:
        newest = max(replaceable, key=lambda r: (r.taken_at, r is new))
        doomed += [r for r in replaceable if r is not newest]
    alive = [r for r in records if r not in doomed]
    doomed += [r for r in alive if now - r.taken_at > max_age]
    alive = sorted((r for r in alive if r not in doomed), key=lambda r: r.taken_at, reverse=True)
    doomed += alive[max(1, max_count) :]
    return doomed


def load_all(debug_dir: Path) -> list[SnapshotRecord]:
    """Every readable record in ``debug_dir``, in no order."""
    if not debug_dir.is_dir():
        return []
    found = []
    for entry in debug_dir.iterdir():
        record = _read(entry / RECORD)
        if record is not None and record.id == entry.name:
            found.append(record)
    return found


def find(debug_dir: Path, pipeline: str, run: int, job: str) -> SnapshotRecord | None:
    """The kept snapshot of that job, when there is one whole (record and workspace)."""
    from backend.runner.postmortem import WORKSPACE_TAR

    folder = debug_dir / snapshot_id(debug_dir, pipeline, run, job)
    record = _read(folder / RECORD)
    if record is None or not (folder / WORKSPACE_TAR).is_file():
        return None
    return record


def discard(directory: Path, image: str, remove_image: ImageRemover) -> None:
    """Remove one snapshot: its image (best effort: ``cicd gc`` finds a leftover by its label)
    and its folder."""
    from backend.source.workspace import remove_tree

    with contextlib.suppress(Exception):
        remove_image(image)
    remove_tree(directory)


def remove_all(debug_dir: Path, client: Any) -> int:
    """``cicd gc``: remove every snapshot of ``debug_dir`` and every image labelled as one of
    its snapshots (one left by a process that died mid-way too); return how many snapshots."""
    from backend.runner.base import LABEL_DEBUG
    from backend.runner.postmortem import labelled_images, remove_image
    from backend.source.workspace import remove_tree

    if not debug_dir.is_dir():
        return 0
    with _locked(debug_dir):
        count = len(load_all(debug_dir))
        for image in labelled_images(client, LABEL_DEBUG, folder_hash(debug_dir)):
            remove_image(client, image)
        for entry in debug_dir.iterdir():
            if entry.name != _LOCK:
                remove_tree(entry)
    return count


def collect(debug_dir: Path) -> int:
    """``cicd gc``: remove every snapshot of ``debug_dir`` from this machine's Docker engine and
    disk; return how many there were (``EngineUnavailable`` when the engine does not answer)."""
    if not debug_dir.is_dir():
        return 0  # none was ever kept: the engine need not answer
    from backend.runner.docker import DockerRunner

    runner = DockerRunner()
    runner.check()
    return remove_all(debug_dir, runner.engine())


def image_remover(runner: object) -> ImageRemover:
    """A function removing an image from ``runner``'s engine (none: it does nothing)."""
    engine = getattr(runner, "engine", None)  # DockerRunner's shared client
    if engine is None:
        return lambda image: None
    from backend.runner.postmortem import remove_image

    client = engine()
    return lambda image: remove_image(client, image)


def _workdir() -> str:
    from backend.runner.engine import WORKDIR

    return WORKDIR


def _read(path: Path) -> SnapshotRecord | None:
    try:
        return SnapshotRecord.from_json(path.read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None


@contextlib.contextmanager
def _locked(debug_dir: Path) -> Iterator[None]:
    """Hold ``debug_dir``'s lock file: one process prunes at a time."""
    debug_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(debug_dir / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
