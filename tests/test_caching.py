"""``cache:`` around a job: keys, policy, when, fallbacks and the lines of the job's log."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from backend import caching
from backend.cache_store import CacheStore
from backend.execution import RunContext
from backend.pipeline.model import Cache, Job, Pipeline, Stage
from backend.recording import Recorder
from backend.runner.fake import FakeRunner
from backend.schemas import Status

Factory = Callable[..., tuple[RunContext, Job]]


@pytest.fixture
def make(tmp_path: Path) -> Factory:
    """A run of one GitLab-style job with ``caches`` (checkout: ``tracked.txt``), real store."""
    from backend.store import Store

    state = tmp_path / "state"  # the store and logs, apart from the folders a test looks at
    state.mkdir()
    store = Store(f"sqlite:///{state / 'cicd.db'}")

    def factory(*caches: Cache, variables: dict[str, str] | None = None) -> tuple[RunContext, Job]:
        job = Job(
            name="build",
            stage="test",
            image="img",
            script=["true"],
            cache=list(caches),
            variables=variables or {},
        )
        pipeline = Pipeline(name="p", stages=[Stage(name="test", jobs=[job])], format="gitlab")
        run_id, number = store.create_run(
            "p",
            [("test", [("build", "img", False)])],
            repo=str(tmp_path),
            branch="main",
            commit="0" * 40,
            file="p.yaml",
            request_key=uuid.uuid4().hex,
        )
        recorder = Recorder(store, run_id, "p", number, state / "logs", worker="test")
        checkout = tmp_path / "checkout"
        checkout.mkdir(exist_ok=True)
        (checkout / "tracked.txt").write_text("in the commit")
        ctx = RunContext(
            key=uuid.uuid4().hex,
            pipeline=pipeline,
            stage_order={"test": [job]},
            runner=FakeRunner(),
            recorder=recorder,
            workspace=checkout,
            commit="0" * 40,
            store=store,
            cache_dir=tmp_path / "home" / "cache",
        )
        return ctx, job

    return factory


def _ws(root: Path, files: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in (files or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def _cycle(ctx: RunContext, job: Job, ws: Path, status: Status = Status.SUCCESS) -> list[str]:
    """Restore, then (the job "ran") save; the job's log lines."""
    lines: list[str] = []
    caching.restore_caches(ctx, job, ws, lines.append)
    caching.save_caches(ctx, job, ws, status, lines.append)
    return lines


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("a/b", "it contains '/'"),
        ("a%2Fb", "it contains '/'"),
        (".", "it is made only of dots"),
        ("..", "it is made only of dots"),
        ("%2e%2E", "it is made only of dots"),
        ("", "it is empty"),
        ("a\nb", "it contains a control character"),
        ("a\x1b[31m", "it contains a control character"),
        ("k" * 1025, "it is longer than 1024 characters"),
        ("..a", None),
        ("ruby-3.2 gems", None),
    ],
)
def test_caching_key_problem_gitlab_rules(key: str, problem: str | None) -> None:
    assert caching.key_problem(key) == problem


def test_caching_cache_key_variables_and_files(tmp_path: Path) -> None:
    ws = _ws(tmp_path / "ws", {"Gemfile.lock": "gems 1", "yarn.lock": "y"})
    env = {"CI_COMMIT_REF_SLUG": "main", "CI_JOB_NAME": "build"}
    assert caching.cache_key(Cache(key="$CI_COMMIT_REF_SLUG-${CI_JOB_NAME}"), env, ws) == (
        "main-build"
    )
    assert caching.cache_key(Cache(key="$UNSET"), env, ws) == "default"
    by_files = Cache(key_files=["Gemfile.lock", "yarn.lock"], key_prefix="$CI_JOB_NAME")
    first = caching.cache_key(by_files, env, ws)
    assert first.startswith("build-") and len(first) == len("build-") + 64
    same = _ws(tmp_path / "same", {"Gemfile.lock": "gems 1", "yarn.lock": "y"})
    assert caching.cache_key(by_files, env, same) == first
    (ws / "Gemfile.lock").write_text("gems 2")
    assert caching.cache_key(by_files, env, ws) != first
    assert caching.cache_key(Cache(key_files=["missing.lock"]), env, ws) == "default"
    assert caching.cache_key(Cache(key_files=["../x"]), env, ws) == "default"


def test_caching_second_run_restores_first_runs_cache(make: Factory, tmp_path: Path) -> None:
    ctx, job = make(Cache(key="deps-$CI_JOB_NAME", paths=["vendor/"]), variables={
        "CI_JOB_NAME": "build"})  # fmt: skip
    first = _ws(tmp_path / "one", {"vendor/lib.py": "v1", "other.txt": "not cached"})
    assert _cycle(ctx, job, first) == [
        "cicd: Restoring cache",
        "cicd: Checking cache for deps-build...",
        "cicd: no cache deps-build",
        "cicd: Failed to extract cache: none of its keys has a cache yet",
        "cicd: Saving cache for successful job",
        "cicd: Creating cache deps-build...",
        "cicd: Created cache deps-build (1 file(s), 2 bytes)",
    ]
    second = _ws(tmp_path / "two")
    lines: list[str] = []
    caching.restore_caches(ctx, job, second, lines.append)
    assert lines == [
        "cicd: Restoring cache",
        "cicd: Checking cache for deps-build...",
        "cicd: Successfully extracted cache deps-build (1 file(s))",
    ]
    assert sorted(p.relative_to(second).as_posix() for p in second.rglob("*")) == [
        "vendor",
        "vendor/lib.py",
    ]
    entry = CacheStore(ctx.cache_dir).entries()[0]  # type: ignore[arg-type]
    assert (entry.key, entry.pipeline, entry.run, entry.job) == ("deps-build", "p", ctx.name,
                                                                  "build")  # fmt: skip


def test_caching_policy_pull_never_saves_push_never_restores(make: Factory, tmp_path: Path) -> None:
    ctx, job = make(Cache(key="k", paths=["a"], policy="pull"))
    assert _cycle(ctx, job, _ws(tmp_path / "one", {"a": "1"}))[-1] == (
        "cicd: Not uploading cache k due to policy"
    )
    assert CacheStore(ctx.cache_dir).entries() == []  # type: ignore[arg-type]
    ctx, job = make(Cache(key="k", paths=["a"], policy="push"))
    lines = _cycle(ctx, job, _ws(tmp_path / "two", {"a": "2"}))
    assert lines[0] == "cicd: Not downloading cache k due to policy"
    assert lines[-1] == "cicd: Created cache k (1 file(s), 1 bytes)"
    third = _ws(tmp_path / "three", {"a": "local"})
    _cycle(ctx, job, third)
    assert (third / "a").read_text() == "local"  # push did not restore "2" over it
    ctx, job = make(Cache(key="k", paths=["a"], policy="pull"))
    fourth = _ws(tmp_path / "four")
    _cycle(ctx, job, fourth)
    assert (fourth / "a").read_text() == "local"


@pytest.mark.parametrize(
    ("when", "status", "saved"),
    [
        ("on_success", Status.SUCCESS, True),
        ("on_success", Status.FAILED, False),
        ("on_failure", Status.FAILED, True),
        ("on_failure", Status.SUCCESS, False),
        ("always", Status.FAILED, True),
        ("always", Status.SUCCESS, True),
        ("always", Status.CANCELED, False),
    ],
)
def test_caching_when_decides_save(
    make: Factory, tmp_path: Path, when: str, status: Status, saved: bool
) -> None:
    ctx, job = make(Cache(key="k", paths=["a"], when=when))  # type: ignore[arg-type]
    lines = _cycle(ctx, job, _ws(tmp_path / "ws", {"a": "1"}), status)
    assert bool(CacheStore(ctx.cache_dir).entries()) is saved  # type: ignore[arg-type]
    outcome = {Status.SUCCESS: "successful", Status.FAILED: "failed"}.get(status, "canceled")
    if saved:
        assert f"cicd: Saving cache for {outcome} job" in lines
    else:
        assert lines[-1] == f"cicd: Not saving cache k: the job is {outcome}, cache:when is {when}"


def test_caching_fallback_keys_then_variable(make: Factory, tmp_path: Path) -> None:
    ctx, job = make(Cache(key="main", paths=["a"], policy="push"))
    _cycle(ctx, job, _ws(tmp_path / "seed", {"a": "from main"}))
    ctx, job = make(
        Cache(key="feature", paths=["a"], fallback_keys=["$NOPE", "other"], policy="pull"),
        variables={"CACHE_FALLBACK_KEY": "main"},
    )
    ws = _ws(tmp_path / "ws")
    lines = _cycle(ctx, job, ws)
    assert lines == [
        "cicd: Restoring cache",
        "cicd: Checking cache for feature...",
        "cicd: no cache feature",
        "cicd: Checking cache for other...",
        "cicd: no cache other",
        "cicd: Checking cache for main...",
        "cicd: Successfully extracted cache main (1 file(s))",
        "cicd: Not uploading cache feature due to policy",
    ]
    assert (ws / "a").read_text() == "from main"


def test_caching_hostile_key_skipped_nothing_outside(make: Factory, tmp_path: Path) -> None:
    ctx, job = make(
        Cache(key="$EVIL", paths=["a"]),
        Cache(key="ok", paths=["a"], fallback_keys=["../../x"]),
        variables={"EVIL": "../../outside"},
    )
    lines = _cycle(ctx, job, _ws(tmp_path / "ws", {"a": "1"}))
    assert lines[0] == (
        "cicd: warning: cache key '../../outside' refused: it contains '/'; this cache is skipped"
    )
    assert "cicd: warning: cache fallback key '../../x' refused: it contains '/'" in lines
    assert [e.key for e in CacheStore(ctx.cache_dir).entries()] == ["ok"]  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkout", "home", "state", "ws"]


def test_caching_untracked_uses_job_workspace_not_checkout(make: Factory, tmp_path: Path) -> None:
    ctx, job = make(Cache(key="u", untracked=True))
    (ctx.workspace / "checkout-only.txt").write_text("must not be cached")
    ws = _ws(tmp_path / "job-copy", {"tracked.txt": "in the commit", "built/out.bin": "new"})
    assert _cycle(ctx, job, ws)[-1] == "cicd: Created cache u (1 file(s), 3 bytes)"
    restored = _ws(tmp_path / "again")
    caching.restore_caches(ctx, job, restored, [].append)
    assert sorted(p.relative_to(restored).as_posix() for p in restored.rglob("*")) == [
        "built",
        "built/out.bin",
    ]


def test_caching_nothing_matched_not_saved(make: Factory, tmp_path: Path) -> None:
    ctx, job = make(Cache(key="k", paths=["missing/", "../up"]))
    lines = _cycle(ctx, job, _ws(tmp_path / "ws"))
    assert (
        lines[-1] == "cicd: warning: cache pattern '../up' escapes the workspace; cache k not saved"
    )
    ctx, job = make(Cache(key="k", paths=["missing/"]))
    assert _cycle(ctx, job, _ws(tmp_path / "ws"))[-2:] == [
        "cicd: warning: cache pattern 'missing/' matched no files",
        "cicd: warning: no file matches the cache's paths; cache k not saved",
    ]


def test_caching_without_cache_dir_does_nothing(make: Factory, tmp_path: Path) -> None:
    ctx, job = make(Cache(key="k", paths=["a"]))
    ctx.cache_dir = None
    assert _cycle(ctx, job, _ws(tmp_path / "ws", {"a": "1"})) == []
    assert not (tmp_path / "home").exists()


def test_caching_runs_around_the_job(make: Factory, tmp_path: Any) -> None:
    """Through ``execute_job``: restored before the runner starts, saved after it."""
    from backend.execution import execute_job

    ctx, job = make(Cache(key="k", paths=["a"]))
    (ctx.workspace / "a").write_text("from the job")
    shown: list[str] = []
    assert execute_job(ctx, job, shown.append) is Status.SUCCESS
    assert any("Created cache k (1 file(s), 12 bytes)" in text for text in shown)
    assert [e.key for e in CacheStore(ctx.cache_dir).entries()] == ["k"]  # type: ignore[arg-type]


def test_caching_key_files_hash_the_checkout_not_the_job(make: Factory, tmp_path: Path) -> None:
    """An overlay workspace is empty before the job, and a job may rewrite the lock file."""
    ctx, job = make(Cache(key_files=["tracked.txt"], key_prefix="lock", paths=["a"]))
    expected = "lock-" + caching.files_digest(ctx.workspace, ["tracked.txt"])  # type: ignore[operator]
    ws = _ws(tmp_path / "upper-layer")  # no tracked.txt in it yet
    lines: list[str] = []
    caching.restore_caches(ctx, job, ws, lines.append)
    assert f"cicd: Checking cache for {expected}..." in lines
    _ws(ws, {"tracked.txt": "rewritten by the job", "a": "1"})
    saved: list[str] = []
    caching.save_caches(ctx, job, ws, Status.SUCCESS, saved.append)
    assert saved[-1] == f"cicd: Created cache {expected} (1 file(s), 1 bytes)"
