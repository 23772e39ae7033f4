"""``cache:``: paths kept between runs under a key, in ``CICD_HOME/cache``.

User docs: docs/pipeline-format.md, ``cache``.

Before a job runs, each of its caches whose ``policy`` pulls (``pull``, ``pull-push``) is
restored into the job's workspace: the first of its key, its ``fallback_keys`` and the
``CACHE_FALLBACK_KEY`` variable that has a cache. After the job, each whose ``policy`` pushes
(``push``, ``pull-push``) is saved when the outcome matches its ``when`` (``on_success``,
``on_failure``, ``always``; a canceled job saves nothing), from ``paths`` (the artifact pattern
syntax; symlinks kept as links, ``backend.cache_paths``) and, with ``untracked``, every
file the commit does not track.

Keys are GitLab's: ``$VARIABLES`` expanded with the job's environment; ``key: files:`` is
``[<prefix>-]<SHA-256 of the files' contents>`` (``default`` when none of them exists); a key
with ``/`` (or ``%2F``), made only of dots, or holding control characters is refused (the
cache is skipped with a warning). A key is never a path: the archive is named after its
``safe_name``. Storage and concurrency: ``backend.cache_store``.

A cache never fails a job: every problem is a ``cicd: warning:`` line of its log. Caches are
restored into and saved from the ``workspace`` argument only (in isolated runs the job's own
overlay layer or copy); the run's checkout is read for ``key: files:`` alone.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from backend.cache_store import CacheStore, CacheTooBig
from backend.pipeline.gitlab.variables import expand
from backend.pipeline.model import Cache, Job
from backend.schemas import Status

if TYPE_CHECKING:
    from backend.execution import RunContext

DEFAULT_KEY = "default"
FALLBACK_VARIABLE = "CACHE_FALLBACK_KEY"
MAX_KEY_LENGTH = 1024  # characters; the file name is a slug and a hash whatever the length
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot name a cache (GitLab's rule, plus one printable line), or None."""
    lowered = key.lower()
    if "/" in key or "%2f" in lowered:
        return "it contains '/'"
    if lowered.replace("%2e", ".").strip(".") == "":
        return "it is made only of dots" if key else "it is empty"
    if _CONTROL.search(key):
        return "it contains a control character"
    if len(key) > MAX_KEY_LENGTH:
        return f"it is longer than {MAX_KEY_LENGTH} characters"
    return None


def files_digest(workspace: Path, patterns: list[str]) -> str | None:
    """SHA-256 of the contents of the files ``patterns`` name (in path order); None: no file.

    Each file's path and content hash go in, so renaming a file changes the key too.
    """
    from backend.runner.artifacts import ArtifactPatternError, match_artifacts

    try:
        found, _warnings = match_artifacts(workspace, patterns)
    except ArtifactPatternError:
        return None
    digest = hashlib.sha256()
    root = workspace.resolve()
    hashed = 0
    for rel in found:
        path = (root / rel).resolve()
        if root not in path.parents:  # a link changed since matching
            continue
        try:
            content = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            continue
        digest.update(f"{rel}\0{content}\n".encode())
        hashed += 1
    return digest.hexdigest() if hashed else None


def cache_key(cache: Cache, env: Mapping[str, str], workspace: Path) -> str:
    """The key ``cache`` has for a job with environment ``env`` in ``workspace``."""
    if cache.key_files:
        digest = files_digest(workspace, list(cache.key_files)) or DEFAULT_KEY
        prefix = expand(cache.key_prefix, env) if cache.key_prefix else ""
        return f"{prefix}-{digest}" if prefix else digest
    return expand(cache.key, env) or DEFAULT_KEY


def restore_caches(ctx: RunContext, job: Job, workspace: Path, line: Callable[[str], None]) -> None:
    """Put ``job``'s caches into ``workspace`` before it runs (policy ``pull``/``pull-push``)."""
    if not job.cache or ctx.cache_dir is None:
        return
    store = CacheStore(ctx.cache_dir)
    env = ctx.job_env(job)
    announced = False
    for cache in job.cache:
        key = _checked_key(cache, env, ctx.workspace, line)
        if key is None:
            continue
        if cache.policy == "push":
            line(f"cicd: Not downloading cache {key} due to policy")
            continue
        if not announced:
            line("cicd: Restoring cache")
            announced = True
        _restore_one(store, cache, key, env, workspace, line)


def _checked_key(
    cache: Cache, env: Mapping[str, str], checkout: Path, line: Callable[[str], None] | None
) -> str | None:
    """``cache``'s key, or None (said on ``line``) when GitLab would refuse it.

    ``key: files:`` hashes the files of the commit (GitLab's rule), so they are read from the
    run's checkout, read only here: in isolated runs the job's workspace is still an empty
    overlay layer before the job, and what a job changes never moves its key.
    """
    key = cache_key(cache, env, checkout)
    problem = key_problem(key)
    if problem is None:
        return key
    if line is not None:
        line(f"cicd: warning: cache key {key!r} refused: {problem}; this cache is skipped")
    return None


def _restore_one(
    store: CacheStore,
    cache: Cache,
    key: str,
    env: Mapping[str, str],
    workspace: Path,
    line: Callable[[str], None],
) -> None:
    candidates = [key]
    for fallback in [*cache.fallback_keys, env.get(FALLBACK_VARIABLE, "")]:
        name = expand(fallback, env)
        if name and name not in candidates:
            problem = key_problem(name)
            if problem is not None:
                line(f"cicd: warning: cache fallback key {name!r} refused: {problem}")
                continue
            candidates.append(name)
    for name in candidates:
        line(f"cicd: Checking cache for {name}...")
        try:
            result = store.restore(name, workspace)
        except Exception as exc:  # a damaged archive or a full disk: the job runs without it
            line(f"cicd: warning: cache {name} cannot be extracted: {exc}")
            continue
        if result is None:
            line(f"cicd: no cache {name}")
            continue
        for warning in result.warnings:
            line(f"cicd: warning: {warning}")
        line(f"cicd: Successfully extracted cache {name} ({result.files} file(s))")
        return
    line("cicd: Failed to extract cache: none of its keys has a cache yet")


def save_caches(
    ctx: RunContext, job: Job, workspace: Path, status: Status, line: Callable[[str], None]
) -> None:
    """Save ``job``'s cached paths from ``workspace`` after it ran (by ``policy`` and ``when``)."""
    if not job.cache or ctx.cache_dir is None:
        return
    env = ctx.job_env(job)  # the same keys as before the job: nothing they hash has changed
    keys = [_checked_key(cache, env, ctx.workspace, None) for cache in job.cache]
    from backend.jobspace import keeps_artifacts, merged_view

    merged_view(ctx, job, workspace)  # an overlay's upper layer becomes the whole tree (once)
    store = CacheStore(ctx.cache_dir)
    outcome = {Status.SUCCESS: "successful", Status.FAILED: "failed"}.get(status, "canceled")
    announced = False
    for cache, key in zip(job.cache, keys, strict=True):
        if key is None:
            continue
        if cache.policy == "pull":
            line(f"cicd: Not uploading cache {key} due to policy")
            continue
        if not keeps_artifacts(cache.when, status):
            line(f"cicd: Not saving cache {key}: the job is {outcome}, cache:when is {cache.when}")
            continue
        if not announced:
            line(f"cicd: Saving cache for {outcome} job")
            announced = True
        _save_one(ctx, job, store, cache, key, workspace, line)


def _save_one(
    ctx: RunContext,
    job: Job,
    store: CacheStore,
    cache: Cache,
    key: str,
    workspace: Path,
    line: Callable[[str], None],
) -> None:
    from backend.cache_paths import match_cache_paths
    from backend.runner.artifacts import ArtifactPatternError

    line(f"cicd: Creating cache {key}...")
    tracked = _tracked(ctx) if cache.untracked else None
    try:
        paths, warnings = match_cache_paths(workspace, list(cache.paths), tracked)
    except ArtifactPatternError as exc:
        line(f"cicd: warning: {exc}; cache {key} not saved")
        return
    for warning in warnings:
        line(f"cicd: warning: {warning}")
    if not paths:
        line(f"cicd: warning: no file matches the cache's paths; cache {key} not saved")
        return
    meta = {"pipeline": ctx.pipeline.name, "run": ctx.name, "job": job.name}
    try:
        result = store.save(key, workspace, paths, meta)
    except CacheTooBig as exc:
        line(f"cicd: warning: cache {key} not saved: {exc}")
        return
    except Exception as exc:  # a file changed while archived, a full disk: the old cache stays
        line(f"cicd: warning: cache {key} not saved: {exc}")
        return
    for warning in result.warnings:
        line(f"cicd: warning: {warning}")
    line(f"cicd: Created cache {key} ({result.files} file(s), {result.bytes} bytes)")


def _tracked(ctx: RunContext) -> frozenset[str]:
    """The commit's files (``cache:untracked`` takes every other file), as jobspace reads them."""
    from backend import jobspace

    tracked = jobspace._state(ctx).tracked  # read once per run from the clean checkout
    return tracked if tracked is not None else frozenset()
