"""Where a job runs and what it hands on: its workspace, the artifacts it keeps and receives.

Two workspace modes (``Pipeline.workspace``; docs/pipeline-format.md, ``pipeline.workspace``):

- **shared** (the native default): every job works in the run's checkout (``ctx.workspace``),
  so each sees what earlier jobs left there;
- **isolated** (GitLab files; ``pipeline.workspace: isolated``): each job gets its own copy of
  the clean checkout (``backend.runner.snapshot.clone_tree``) under ``<run folder>.jobs/``,
  plus the artifacts of the jobs it depends on, restored in plan order (a later one's file
  wins). The run's checkout itself is never written. The copy is removed when the job ends.

The jobs a job depends on are GitLab's: its ``dependencies`` when given, else what its
``needs`` name (less those given ``artifacts: false``), else every job of the earlier stages.
Only jobs that kept artifacts count: a job keeps them when its outcome matches
``artifacts:when`` (a failed job with ``when: always`` or ``on_failure`` counts).

``reports: dotenv`` files are kept whatever the outcome (as GitLab uploads reports), parsed
(``backend.runner.artifacts.parse_dotenv``) and their variables handed to the jobs that receive
that job's artifacts, in both modes. They override the file's variables and the predefined
``CI_*`` ones, and never ``--env`` values nor cicd's own (``CI``, ``CICD_*``): GitLab ranks
dotenv variables above job and global YAML variables and below variables given to the run.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from backend.paths import safe_child
from backend.pipeline.model import Job
from backend.schemas import Status

if TYPE_CHECKING:
    from backend.execution import RunContext
    from backend.store.records import ReusedArtifact

JOBS_SUFFIX = ".jobs"  # <workspaces>/<run key>.jobs/<safe job name>: the isolated workspaces
# expire_in beyond this is kept as this (datetime arithmetic must not overflow)
MAX_EXPIRE = timedelta(days=365 * 100)


@dataclass
class Handed:
    """What one finished job hands to the jobs that depend on it."""

    files: list[tuple[str, Path]] = field(default_factory=list)  # (relative path, stored file)
    dotenv: dict[str, str] = field(default_factory=dict)


@dataclass
class _RunState:
    """Per-run bookkeeping, created on first use."""

    tracked: frozenset[str] | None = None  # the commit's files (for artifacts:untracked)
    handed: dict[str, Handed] = field(default_factory=dict)
    strategy: str | None = None  # "overlay" or "copy", chosen at the first isolated job
    volumes: dict[Path, str] = field(default_factory=dict)  # a job's workspace -> its volume
    merged: set[Path] = field(default_factory=set)  # overlay workspaces already merged
    lock: threading.Lock = field(default_factory=threading.Lock)


_STATES: dict[str, _RunState] = {}
_STATES_LOCK = threading.Lock()


def jobs_root(workspace: Path) -> Path:
    """The folder holding the isolated workspaces of the run whose checkout is ``workspace``."""
    return workspace.parent / f"{workspace.name}{JOBS_SUFFIX}"


def isolated(ctx: RunContext) -> bool:
    """Whether each job of the run gets its own workspace."""
    return ctx.pipeline.workspace == "isolated"


def open_workspace(ctx: RunContext, job: Job, line: Callable[[str], None]) -> Path:
    """The directory ``job`` runs in (mounted at ``/workspace``).

    Isolated runs: the job's own view of the clean checkout (its dependencies' artifacts are
    added by ``restore_artifacts``, after its caches).
    With Docker that is an overlay volume (``volume_of``): the checkout is its read-only lower
    layer and the returned directory its upper layer (what the job writes lands there); without
    (or where an overlay cannot work) a copy of the checkout (``clone_tree``).
    """
    state = _state(ctx)
    if not isolated(ctx):
        return ctx.workspace

    root = jobs_root(ctx.workspace)
    root.mkdir(mode=0o700, exist_ok=True)
    home = safe_child(root, job.name)  # a name is never a path (../x, /tmp/x)
    if home.exists() or home.is_symlink():  # left by an earlier attempt of the same run
        _remove_home(ctx, state, home)
    try:
        dest = _make_view(ctx, state, home, line)
    except Exception:
        _remove_home(ctx, state, home)
        raise
    return dest


def restore_artifacts(
    ctx: RunContext, job: Job, workspace: Path, line: Callable[[str], None]
) -> None:
    """Write the artifacts of the jobs ``job`` depends on into its isolated ``workspace``.

    Called after its caches are restored, as GitLab does: an artifact wins over a cached file
    at the same path.
    """
    if not isolated(ctx):
        return
    from backend.runner.artifacts import restore_files

    state = _state(ctx)
    dest = workspace
    files: list[tuple[str, Path]] = []
    sources: list[str] = []
    with state.lock:
        for name in artifact_sources(ctx, job):
            handed = state.handed.get(name)
            if handed is not None and handed.files:
                files += handed.files
                sources.append(name)
    if files:
        for warning in restore_files(files, dest):
            line(f"cicd: warning: {warning}")
        line(f"cicd: restored {len(files)} artifact file(s) of {', '.join(sources)}")


def volume_of(ctx: RunContext, workspace: Path) -> str | None:
    """The Docker volume to mount at ``/workspace`` for ``workspace`` (None: bind it)."""
    state = _state(ctx)
    with state.lock:
        return state.volumes.get(workspace)


def close_workspace(ctx: RunContext, job: Job, workspace: Path) -> None:
    """Release what ``open_workspace`` made for ``job``: its volume and its folder go."""
    if workspace == ctx.workspace:
        return
    _remove_home(ctx, _state(ctx), workspace.parent)


def finish_run(ctx: RunContext) -> None:
    """Forget the run's bookkeeping; remove its isolated workspaces' folder and volumes."""
    from backend.source.workspace import remove_tree

    with _STATES_LOCK:
        state = _STATES.pop(ctx.key, None)
    if state is not None and state.strategy == "overlay":
        remove_run_volumes(ctx.runner, ctx.key)
    remove_tree(jobs_root(ctx.workspace))


def remove_run_volumes(runner: object, key: str) -> None:
    """Remove the overlay volumes of run ``key`` (best effort: no engine, nothing to remove)."""
    from backend.runner.base import LABEL_RUN
    from backend.runner.snapshot import remove_labelled_volumes

    client = _client(runner)
    if client is None:
        return
    try:
        remove_labelled_volumes(client, LABEL_RUN, key)
    except Exception:  # the engine went away: its volumes went with it or wait for the reaper
        return


def _client(runner: object) -> object | None:
    """The Docker client of ``runner`` (the DockerRunner's shared one), or None."""
    make = getattr(runner, "_docker", None)  # DockerRunner's shared client (its connection pool)
    if make is None:
        return None
    try:
        return make()
    except Exception:
        return None


def _make_view(ctx: RunContext, state: _RunState, home: Path, line: Callable[[str], None]) -> Path:
    """Make ``home`` hold the job's view of the checkout; return the directory to work in."""
    from backend.runner.base import LABEL_MANAGED, LABEL_RUN
    from backend.runner.snapshot import (
        OVERLAY_PREFIX,
        clone_tree,
        create_overlay_volume,
        overlay_supported,
    )
    from backend.source.workspace import remove_tree

    home.mkdir(mode=0o700)
    base = ctx.workspace.resolve()
    with state.lock:
        if state.strategy is None:
            client = _client(ctx.runner)
            why = "no Docker engine" if client is None else overlay_supported([base, home])
            state.strategy = "copy" if why else "overlay"
            if why and client is not None:
                line(f"cicd: isolated workspaces are copies of the checkout ({why})")
        strategy = state.strategy
    if strategy == "overlay":
        client = _client(ctx.runner)
        upper, work = home / "upper", home / "work"
        upper.mkdir()
        work.mkdir()
        name = f"{OVERLAY_PREFIX}{ctx.key}-{home.name}"
        labels = {LABEL_MANAGED: "1", LABEL_RUN: ctx.key}
        try:
            create_overlay_volume(client, name, base, upper, work, labels)
        except Exception as exc:  # the engine refused it: copies for the rest of the run
            with state.lock:
                state.strategy = "copy"
            line(f"cicd: isolated workspaces are copies of the checkout (overlay volume: {exc})")
            remove_tree(upper)
            remove_tree(work)
        else:
            with state.lock:
                state.volumes[upper] = name
            return upper
    tree = home / "tree"
    clone_tree(base, tree)
    return tree


def _remove_home(ctx: RunContext, state: _RunState, home: Path) -> None:
    """Remove a job's folder (and the volume over it)."""
    from backend.runner.snapshot import remove_volume
    from backend.source.workspace import remove_tree

    upper = home / "upper"
    with state.lock:
        name = state.volumes.pop(upper, None)
        state.merged.discard(upper)
    if name is not None:
        client = _client(ctx.runner)
        if client is not None:
            remove_volume(client, name)
    remove_tree(home)


def merged_view(ctx: RunContext, job: Job, workspace: Path) -> None:
    """After the job: make an overlay's upper layer the whole tree it saw, once, when read.

    Collectors (artifacts, reports, caches) then read every file, changed or not; a job that
    keeps nothing skips it.
    """
    options = job.artifacts_options
    wanted = job.artifacts or options.untracked or options.reports or job.cache
    state = _state(ctx)
    with state.lock:
        if not wanted or workspace not in state.volumes or workspace in state.merged:
            return
        state.merged.add(workspace)
    from backend.runner.snapshot import merge_lower

    merge_lower(ctx.workspace.resolve(), workspace)


def artifact_sources(ctx: RunContext, job: Job) -> list[str]:
    """The jobs whose artifacts (and dotenv) ``job`` receives, in plan order (GitLab's rule).

    ``dependencies`` when given; else its ``needs`` less those with ``artifacts: false`` (a
    job with ``needs: []`` receives nothing); else every planned job of the earlier stages.
    """
    planned = [j.name for jobs in ctx.stage_order.values() for j in jobs]
    original = ctx.pipeline.job(job.name)
    if original.dependencies is not None:
        wanted = set(original.dependencies)
    elif job.dag:
        wanted = set(original.needs) - set(original.needs_without_artifacts)
    else:
        wanted = set(ctx.waits_for(job.model_copy(update={"dag": False})))
        if ctx.pipeline.format != "gitlab":  # native needs are jobs of the same stage
            wanted |= set(original.needs)
    return [name for name in planned if name in wanted]


def dotenv_of_dependencies(ctx: RunContext, job: Job) -> dict[str, str]:
    """Variables ``reports: dotenv`` of the jobs ``job`` depends on hand to it.

    A later dependency's value wins; ``--env`` names and cicd's own (``CI``, ``CICD_*``)
    are left out, so they keep theirs.
    """
    state = _state(ctx)
    merged: dict[str, str] = {}
    with state.lock:
        for name in artifact_sources(ctx, job):
            handed = state.handed.get(name)
            if handed is not None:
                merged.update(handed.dotenv)
    return {
        key: value
        for key, value in merged.items()
        if key not in ctx.extra_env and key != "CI" and not key.startswith("CICD_")
    }


def keeps_artifacts(when: str, status: Status) -> bool:
    """Whether a job that ended ``status`` keeps its artifacts under ``artifacts:when``."""
    if status is Status.SUCCESS:
        return when in ("on_success", "always")
    if status is Status.FAILED:
        return when in ("on_failure", "always")
    return False  # canceled: the job did not end on its own


def expires_at(expire_in: str | None, now: datetime) -> datetime | None:
    """When artifacts kept at ``now`` expire (None: never, or no ``expire_in``)."""
    if expire_in is None or expire_in.strip().lower() == "never":
        return None
    from backend.pipeline.gitlab.duration import parse_duration

    seconds = parse_duration(expire_in)
    if seconds is None:
        return None
    return now + timedelta(seconds=min(seconds, MAX_EXPIRE.total_seconds()))


def collect_artifacts(
    ctx: RunContext, job: Job, workspace: Path, status: Status, line: Callable[[str], None]
) -> None:
    """Keep ``job``'s artifacts from ``workspace`` and record them in the store.

    ``artifacts:paths`` (and ``untracked``, less ``exclude``) when the outcome matches
    ``artifacts:when``; a ``reports: dotenv`` file whenever the job ended (success or failure).
    """
    from backend.runner.artifacts import ArtifactPatternError, parse_dotenv
    from backend.runner.artifacts import collect_artifacts as collect

    merged_view(ctx, job, workspace)  # an overlay's upper layer becomes the whole tree
    options = job.artifacts_options
    state = _state(ctx)
    handed = Handed()
    now = datetime.now(UTC)
    expiry = expires_at(options.expire_in, now)
    wanted = (job.artifacts or options.untracked) and keeps_artifacts(options.when, status)
    if wanted and ctx.artifacts_dir is not None:
        dest = safe_child(ctx.artifacts_dir, job.name)  # a name is never a path (../x, /tmp/x)
        try:
            result = collect(
                workspace,
                list(job.artifacts),
                dest,
                exclude=list(options.exclude),
                tracked=state.tracked if options.untracked else None,
            )
        except ArtifactPatternError as exc:
            line(f"cicd: warning: {exc}")
        else:
            for warning in result.warnings:
                line(f"cicd: warning: {warning}")
            for item in result.files:
                _record(ctx, job, item.path, item.size, item.sha256, item.stored_path, expiry)
                handed.files.append((item.path, item.stored_path))
            if result.files:
                line(f"cicd: collected {len(result.files)} artifact file(s)")
    dotenv_paths = options.reports.get("dotenv", [])
    if dotenv_paths and status in (Status.SUCCESS, Status.FAILED):
        handed.dotenv = _dotenv(ctx, job, workspace, dotenv_paths, expiry, line, parse_dotenv)
    if handed.files or handed.dotenv:
        with state.lock:
            state.handed[job.name] = handed


DOTENV_PREFIX = ".reports/dotenv/"  # how a dotenv report's file is recorded among artifacts


def reuse_artifacts(
    ctx: RunContext, job: Job, kept: Sequence[ReusedArtifact], line: Callable[[str], None]
) -> None:
    """Keep the artifacts a REUSED ``job`` left in the run it ran in (``cicd retry``) as this
    run's, and hand them on as if it had just run: its files (and dotenv variables) reach the
    jobs that depend on it; in a shared workspace they are written into the checkout.

    Each file is hard-linked into this run's artifacts folder (copied across file systems), so
    either run's expiry or ``cicd gc`` leaves the other's alone. A stored file that is gone
    (expired, removed) is an error: the job cannot be carried over.
    """
    if ctx.artifacts_dir is None or not kept:
        return
    from backend.runner.artifacts import parse_dotenv, restore_files

    handed = Handed()
    for item in kept:
        dotenv = item.kind == "dotenv"
        rel = item.path.removeprefix(DOTENV_PREFIX) if dotenv else item.path
        parts = rel.split("/")
        if not rel or rel.startswith("/") or ".." in parts or "" in parts:
            line(f"cicd: warning: artifact '{item.path}' not reused: not a relative path")
            continue
        folder = safe_child(ctx.artifacts_dir, job.name, ".dotenv" if dotenv else "")
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        source = Path(item.stored_path)
        if not source.is_file():
            raise FileNotFoundError(
                f"artifact '{item.path}' of the earlier run is gone (expired or removed by "
                "cicd gc): run the pipeline again"
            )
        target.unlink(missing_ok=True)
        try:
            os.link(source, target)
        except OSError:  # another file system, or links not allowed: a copy
            shutil.copy2(source, target)
        if ctx.store is not None:
            ctx.store.add_artifact(
                ctx.recorder.run_id, job.name, item.path, item.size, item.sha256, str(target),
                name=item.name, expires_at=item.expires_at, kind=item.kind,
            )  # fmt: skip
        if dotenv:
            values, _why = parse_dotenv(target)
            handed.dotenv.update(values)
        else:
            handed.files.append((rel, target))
    if handed.files and not isolated(ctx):  # the shared checkout is every later job's
        for warning in restore_files(handed.files, ctx.workspace):
            line(f"cicd: warning: {warning}")
    if handed.files or handed.dotenv:
        state = _state(ctx)
        with state.lock:
            state.handed[job.name] = handed


def _dotenv(
    ctx: RunContext,
    job: Job,
    workspace: Path,
    paths: list[str],
    expiry: datetime | None,
    line: Callable[[str], None],
    parse: Callable[[Path], tuple[dict[str, str], str | None]],
) -> dict[str, str]:
    """Read and keep the job's dotenv reports; their variables, later files winning."""
    from backend.runner.artifacts import ArtifactPatternError, match_artifacts
    from backend.runner.artifacts import collect_artifacts as collect

    values: dict[str, str] = {}
    for pattern in paths:
        try:
            found, _warnings = match_artifacts(workspace, [pattern])
        except ArtifactPatternError as exc:
            line(f"cicd: warning: dotenv report: {exc}")
            continue
        if not found:
            line(f"cicd: warning: dotenv report '{pattern}' not found")
            continue
        for rel in found:
            source = workspace / rel
            parsed, why = parse(source)
            if why is not None:
                line(f"cicd: warning: dotenv report '{rel}' ignored: {why}")
                continue
            values.update(parsed)
            if ctx.artifacts_dir is not None:  # beside the job's artifacts, never among them
                dest = safe_child(ctx.artifacts_dir, job.name, ".dotenv")
                kept = collect(workspace, [rel], dest)
                for item in kept.files:
                    _record(ctx, job, f"{DOTENV_PREFIX}{item.path}", item.size, item.sha256,
                            item.stored_path, expiry, kind="dotenv")  # fmt: skip
    if values:
        line(f"cicd: dotenv report: {len(values)} variable(s) for the jobs that depend on it")
    return values


def _record(
    ctx: RunContext,
    job: Job,
    path: str,
    size: int,
    sha256: str,
    stored: Path,
    expiry: datetime | None,
    kind: str = "file",
) -> None:
    if ctx.store is None:
        return
    ctx.store.add_artifact(
        ctx.recorder.run_id,
        job.name,
        path,
        size,
        sha256,
        str(stored),
        name=job.artifacts_options.name,
        expires_at=expiry,
        kind=kind,
    )


def _state(ctx: RunContext) -> _RunState:
    """The run's bookkeeping; the commit's file list is read before any job runs."""
    with _STATES_LOCK:
        state = _STATES.get(ctx.key)
        if state is None:
            state = _STATES[ctx.key] = _RunState()
    with state.lock:
        if state.tracked is None:  # read once, before any job runs; only if a job needs it
            from backend.runner.artifacts import tree_files

            wanted = any(
                j.artifacts_options.untracked or any(c.untracked for c in j.cache)
                for j in ctx.pipeline.jobs
            )  # artifacts:untracked and cache:untracked (backend.caching) both need it
            listed = wanted and ctx.workspace.is_dir()
            state.tracked = tree_files(ctx.workspace) if listed else frozenset()
    return state


@dataclass
class Collected:
    """What ``remove_expired`` did."""

    files: int = 0  # records removed (their files too, when they were ours)
    bytes: int = 0  # bytes freed
    outside: int = 0  # records whose file was not under the artifacts folder: left alone


def remove_expired(store: object, artifacts_dir: Path, now: datetime) -> Collected:
    """Remove the artifacts whose ``expires_at`` has passed: their files, then their records.

    A file is removed only when it lies under ``artifacts_dir`` (a record is data: it never
    makes us delete anything else); folders left empty go too.
    """
    done = Collected()
    base = artifacts_dir.resolve()
    while batch := store.expired_artifacts(now):  # type: ignore[attr-defined]
        for _id, stored in batch:
            path = Path(stored)
            parent = path.parent.resolve()
            if not parent.is_relative_to(base) or path.name in ("", ".", ".."):
                done.outside += 1
                continue
            target = parent / path.name
            try:
                if target.is_file() and not target.is_symlink():
                    done.bytes += target.stat().st_size
                target.unlink(missing_ok=True)
            except OSError:
                continue
            _prune_empty(parent, base)
        done.files += store.delete_artifacts([i for i, _ in batch])  # type: ignore[attr-defined]
    return done


def _prune_empty(folder: Path, base: Path) -> None:
    """Remove ``folder`` and its parents up to (not including) ``base`` while they are empty."""
    while folder != base and folder.is_relative_to(base):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
