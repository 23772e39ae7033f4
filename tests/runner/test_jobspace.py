"""Per-job workspaces and artifacts between jobs, unit by unit (backend.jobspace and helpers).

The overlay tests use the real Docker engine: the engine mounts the volume, a real container
writes through it, and the checkout under it stays as committed.
"""

from __future__ import annotations

import os
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from backend import jobspace
from backend.execution import RunContext
from backend.pipeline.model import Artifacts, Job, Pipeline, Stage
from backend.runner.artifacts import (
    MAX_DOTENV_BYTES,
    collect_artifacts,
    parse_dotenv,
    restore_files,
    tree_files,
)
from backend.runner.base import Outcome
from backend.runner.fake import FakeRunner
from backend.runner.snapshot import SnapshotError, clone_tree, merge_lower
from backend.schemas import Status


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


# -- dotenv ------------------------------------------------------------------------------------


def test_parse_dotenv_valid_file_keeps_values_as_written(tmp_path: Path) -> None:
    env = tmp_path / "build.env"
    env.write_text('# built\n\nVERSION=1.2.3\nQUOTED="a b"\n  SPACED = x y  \nEMPTY=\nA=1=2\n')
    assert parse_dotenv(env) == (
        {"VERSION": "1.2.3", "QUOTED": '"a b"', "SPACED": "x y", "EMPTY": "", "A": "1=2"},
        None,
    )


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("bad-key=1\n", "line 1 is not KEY=VALUE with a key of letters, digits and '_'"),
        ("OK=1\nno equals sign\n", "line 2 is not KEY=VALUE with a key of letters, digits and '_'"),
        ("KÉY=1\n", "line 1 is not KEY=VALUE with a key of letters, digits and '_'"),
        ("A=\0\n", "line 1 holds a NUL character"),
        ("".join(f"V{i}=1\n" for i in range(21)), "it sets more than 20 variables"),
        ("A=" + "x" * MAX_DOTENV_BYTES + "\n", "it is larger than 5 KiB"),
    ],
)
def test_parse_dotenv_refused_file_hands_nothing(tmp_path: Path, content: str, why: str) -> None:
    env = tmp_path / "build.env"
    env.write_text(content)
    assert parse_dotenv(env) == ({}, why)


def test_parse_dotenv_symlink_or_binary_refused(tmp_path: Path) -> None:
    (tmp_path / "real.env").write_text("A=1\n")
    (tmp_path / "link.env").symlink_to(tmp_path / "real.env")
    (tmp_path / "bin.env").write_bytes(b"A=\xff\xfe\n")
    assert parse_dotenv(tmp_path / "link.env") == ({}, "link.env is not a regular file")
    assert parse_dotenv(tmp_path / "bin.env") == ({}, "it is not UTF-8 text")


# -- collecting and restoring ---------------------------------------------------------------------


def test_collect_artifacts_exclude_untracked_and_globstar(tmp_path: Path) -> None:
    ws, dest = tmp_path / "ws", tmp_path / "dest"
    _write(ws, {"src/a.py": "", "out/x/y/r.txt": "", "out/z.tmp": "", "new.log": "", "src/b.o": ""})
    tracked = frozenset({"src/a.py"})
    result = collect_artifacts(ws, ["out/**"], dest, exclude=["**/*.tmp", "*.o"], tracked=tracked)
    # untracked adds new.log and src/b.o; exclude takes out.tmp (**) but not src/b.o (* is one
    # segment, and src/b.o is two)
    assert [f.path for f in result.files] == ["new.log", "out/x/y/r.txt", "src/b.o"]


def test_collect_artifacts_size_limit_skips_what_passes_it(tmp_path: Path) -> None:
    ws, dest = tmp_path / "ws", tmp_path / "dest"
    _write(ws, {"a.bin": "x" * 600, "b.bin": "y" * 600, "c.bin": "z" * 300})
    result = collect_artifacts(ws, ["*.bin"], dest, max_bytes=1000)
    assert [f.path for f in result.files] == ["a.bin", "c.bin"]
    assert result.warnings == ["artifact 'b.bin' skipped: the job's artifacts would pass 1000 B"]
    assert not (dest / "b.bin").exists()


def test_restore_files_never_writes_through_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "lib").symlink_to(outside)  # a committed symlink out of the workspace
    (ws / "conf").symlink_to(outside / "conf")  # a dangling one, where a file is restored
    stored = tmp_path / "stored"
    stored.write_text("payload")
    warnings = restore_files(
        [("lib/evil", stored), ("conf", stored), ("../up", stored), ("ok/file", stored)], ws
    )
    assert warnings == [
        "artifact 'lib/evil' not restored: 'lib' is a symlink or a file in the workspace",
        "artifact '../up' not restored: not a path inside the workspace",
    ]
    assert list(outside.iterdir()) == []
    assert not (ws / "conf").is_symlink() and (ws / "conf").read_text() == "payload"
    assert (ws / "ok" / "file").read_text() == "payload"
    assert not (tmp_path / "up").exists()


def test_tree_files_lists_files_and_symlinks_not_dirs(tmp_path: Path) -> None:
    _write(tmp_path, {"a/b.txt": "", "c": ""})
    (tmp_path / "link").symlink_to("a")
    assert tree_files(tmp_path) == {"a/b.txt", "c", "link"}


# -- snapshots -----------------------------------------------------------------------------------


def test_clone_tree_copy_is_private_and_keeps_modes_and_symlinks(tmp_path: Path) -> None:
    base = tmp_path / "base"
    _write(base, {"run.sh": "echo\n", "d/f": "original"})
    os.chmod(base / "run.sh", 0o755)
    (base / "link").symlink_to("d/f")
    dest = tmp_path / "job"
    clone_tree(base, dest)
    (dest / "d" / "f").write_text("changed in place")  # what a job's `>` does
    assert (base / "d" / "f").read_text() == "original"
    assert os.stat(dest / "run.sh").st_mode & 0o777 == 0o755
    assert os.readlink(dest / "link") == "d/f"
    with pytest.raises(SnapshotError, match="already exists"):
        clone_tree(base, dest)


def test_merge_lower_applies_whiteouts_opaque_dirs_and_links_the_rest(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    _write(lower, {"keep.txt": "k", "gone.txt": "g", "d/old.txt": "o", "m/a.txt": "a"})
    _write(upper, {"new.txt": "n", "keep.txt": "changed", "d/fresh.txt": "f", "m/b.txt": "b"})
    os.mknod(upper / "gone.txt", 0o600 | 0o020000, os.makedev(0, 0))  # a whiteout
    os.setxattr(upper / "d", "user.overlay.opaque", b"y")  # d was deleted, then made again
    merge_lower(lower, upper)
    assert tree_files(upper) == {"keep.txt", "new.txt", "d/fresh.txt", "m/a.txt", "m/b.txt"}
    assert (upper / "keep.txt").read_text() == "changed"
    assert (upper / "m" / "a.txt").read_text() == "a"


# -- the jobs a job receives from ---------------------------------------------------------------


def _context(tmp_path: Path, jobs: list[Job], **changes: Any) -> RunContext:
    stages: dict[str, list[Job]] = {}
    for job in jobs:
        stages.setdefault(job.stage, []).append(job)
    pipeline = Pipeline(
        name="p",
        stages=[Stage(name=s, jobs=j) for s, j in stages.items()],
        format=changes.pop("format", "gitlab"),
        workspace=changes.pop("workspace", "isolated"),
    )
    workspace = tmp_path / "checkout"
    workspace.mkdir(exist_ok=True)
    return RunContext(
        key=uuid.uuid4().hex,
        pipeline=pipeline,
        stage_order={s.name: list(s.jobs) for s in pipeline.stages},
        runner=changes.pop("runner", FakeRunner()),
        recorder=None,  # type: ignore[arg-type]
        workspace=workspace,
        commit="0" * 40,
        **changes,
    )


def _job(name: str, stage: str, **fields: Any) -> Job:
    return Job(name=name, stage=stage, image="x", script=["true"], **fields)


def test_artifact_sources_follow_gitlab_rule(tmp_path: Path) -> None:
    jobs = [
        _job("a", "build"),
        _job("b", "build"),
        _job("plain", "test"),
        _job("deps", "test", dependencies=["b"]),
        _job("none", "test", dependencies=[]),
        _job("needy", "test", needs=["a", "b"], dag=True, needs_without_artifacts=["a"]),
        _job("empty_needs", "test", dag=True),
    ]
    ctx = _context(tmp_path, jobs)
    got = {j.name: jobspace.artifact_sources(ctx, j) for j in jobs}
    assert got == {
        "a": [],
        "b": [],
        "plain": ["a", "b"],
        "deps": ["b"],
        "none": [],
        "needy": ["b"],
        "empty_needs": [],
    }


def test_dotenv_of_dependencies_later_wins_and_never_overrides_cli_or_cicd(tmp_path: Path) -> None:
    jobs = [_job("a", "build"), _job("b", "build"), _job("c", "test")]
    ctx = _context(tmp_path, jobs, extra_env={"FROM_CLI": "cli"})
    state = jobspace._state(ctx)
    state.handed["a"] = jobspace.Handed(dotenv={"V": "a", "FROM_CLI": "a", "CI": "no"})
    state.handed["b"] = jobspace.Handed(dotenv={"V": "b", "CICD_JOB": "forged", "OTHER": "1"})
    assert jobspace.dotenv_of_dependencies(ctx, jobs[2]) == {"V": "b", "OTHER": "1"}
    jobspace.finish_run(ctx)


@pytest.mark.parametrize(
    ("when", "status", "kept"),
    [
        ("on_success", Status.SUCCESS, True),
        ("on_success", Status.FAILED, False),
        ("on_failure", Status.FAILED, True),
        ("on_failure", Status.SUCCESS, False),
        ("always", Status.FAILED, True),
        ("always", Status.CANCELED, False),
    ],
)
def test_keeps_artifacts_follows_when(when: str, status: Status, kept: bool) -> None:
    assert jobspace.keeps_artifacts(when, status) is kept


def test_expires_at_durations_never_and_bounds() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert jobspace.expires_at("1 week", now) == now + timedelta(weeks=1)
    assert jobspace.expires_at("never", now) is None
    assert jobspace.expires_at(None, now) is None
    assert jobspace.expires_at("9999999 years", now) == now + jobspace.MAX_EXPIRE


# -- isolated workspaces with the copy ----------------------------------------------------------


def test_open_workspace_copy_isolated_restores_dependencies_and_cleans_up(tmp_path: Path) -> None:
    jobs = [_job("a", "build"), _job("b", "build"), _job("c", "test", dependencies=["a"])]
    ctx = _context(tmp_path, jobs)
    _write(ctx.workspace, {"committed.txt": "original"})
    stored = tmp_path / "store-a.txt"
    stored.write_text("from a")
    state = jobspace._state(ctx)
    state.handed["a"] = jobspace.Handed(files=[("out/a.txt", stored)])
    state.handed["b"] = jobspace.Handed(files=[("out/b.txt", stored)])
    lines: list[str] = []
    ws_a = jobspace.open_workspace(ctx, jobs[0], lines.append)
    ws_c = jobspace.open_workspace(ctx, jobs[2], lines.append)
    assert tree_files(ws_c) == {"committed.txt"}  # artifacts come after the caches
    jobspace.restore_artifacts(ctx, jobs[0], ws_a, lines.append)
    jobspace.restore_artifacts(ctx, jobs[2], ws_c, lines.append)
    (ws_a / "committed.txt").write_text("changed by a")
    assert ws_a != ws_c and ws_a.is_relative_to(jobspace.jobs_root(ctx.workspace))
    assert (ctx.workspace / "committed.txt").read_text() == "original"
    assert (ws_c / "committed.txt").read_text() == "original"
    assert tree_files(ws_c) == {"committed.txt", "out/a.txt"}
    assert lines == ["cicd: restored 1 artifact file(s) of a"]
    assert jobspace.volume_of(ctx, ws_c) is None  # the FakeRunner has no engine: a copy
    jobspace.close_workspace(ctx, jobs[0], ws_a)
    jobspace.close_workspace(ctx, jobs[2], ws_c)
    assert not ws_a.exists() and not ws_c.exists()
    jobspace.finish_run(ctx)
    assert not jobspace.jobs_root(ctx.workspace).exists()


def test_open_workspace_shared_is_the_checkout(tmp_path: Path) -> None:
    ctx = _context(tmp_path, [_job("a", "build")], workspace="shared", format="native")
    assert jobspace.open_workspace(ctx, ctx.pipeline.jobs[0], print) == ctx.workspace
    jobspace.close_workspace(ctx, ctx.pipeline.jobs[0], ctx.workspace)
    assert ctx.workspace.is_dir()
    jobspace.finish_run(ctx)


def test_collect_artifacts_hostile_name_and_when_on_failure(tmp_path: Path) -> None:
    job = _job(
        "../../evil",
        "build",
        artifacts=["log/"],
        artifacts_options=Artifacts(when="on_failure", reports={"dotenv": ["x.env"]}),
    )
    ctx = _context(tmp_path, [job], artifacts_dir=tmp_path / "artifacts" / "1")
    ws = jobspace.open_workspace(ctx, job, print)
    _write(ws, {"log/out.txt": "log", "x.env": "A=1\n"})
    lines: list[str] = []
    jobspace.collect_artifacts(ctx, job, ws, Status.SUCCESS, lines.append)
    assert jobspace._state(ctx).handed["../../evil"].files == []  # on_failure: not on success
    jobspace.collect_artifacts(ctx, job, ws, Status.FAILED, lines.append)
    handed = jobspace._state(ctx).handed["../../evil"]
    assert [rel for rel, _ in handed.files] == ["log/out.txt"] and handed.dotenv == {"A": "1"}
    root = (tmp_path / "artifacts" / "1").resolve()
    assert all(p.resolve().is_relative_to(root) for _, p in handed.files)
    jobspace.close_workspace(ctx, job, ws)
    jobspace.finish_run(ctx)


def test_remove_expired_only_deletes_files_under_the_artifacts_folder(tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    _write(artifacts, {"1/job/a.txt": "aaaa"})
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    deleted: list[int] = []

    class Store:
        def __init__(self) -> None:
            self.rows = [(1, str(artifacts / "1/job/a.txt")), (2, str(victim)), (3, str(artifacts))]

        def expired_artifacts(self, now: datetime) -> list[tuple[int, str]]:
            rows, self.rows = self.rows, []
            return rows

        def delete_artifacts(self, ids: list[int]) -> int:
            deleted.extend(ids)
            return len(ids)

    done = jobspace.remove_expired(Store(), artifacts, datetime.now(UTC))
    assert (done.files, done.bytes, done.outside) == (3, 4, 2)
    assert deleted == [1, 2, 3]
    assert victim.read_text() == "keep me"
    assert not (artifacts / "1").exists() and artifacts.is_dir()


# -- overlay volumes, with the real engine -----------------------------------------------------


@pytest.mark.docker
def test_open_workspace_overlay_isolates_jobs_and_leaves_the_checkout(
    tmp_path: Path, docker_runner: Any, busybox_image: str
) -> None:
    from backend.runner.base import JobSpec

    jobs = [
        _job("left", "build", artifacts=["same.txt", "committed.txt"]),
        _job("right", "build"),
    ]
    ctx = _context(tmp_path, jobs, runner=docker_runner, artifacts_dir=tmp_path / "art")
    _write(ctx.workspace, {"committed.txt": "original\n", "dir/keep.txt": "k\n"})
    spaces = {j.name: jobspace.open_workspace(ctx, j, print) for j in jobs}
    assert all(jobspace.volume_of(ctx, ws) for ws in spaces.values())
    scripts = {
        "left": ["echo left > same.txt", "echo left > committed.txt", "rm -r dir", "sleep 1",
                 "cat same.txt"],
        "right": ["echo right > same.txt", "sleep 1", "cat same.txt committed.txt dir/keep.txt"],
    }  # fmt: skip
    seen: dict[str, list[str]] = {name: [] for name in scripts}

    def run(name: str) -> None:
        spec = JobSpec(
            run_id=ctx.key, job=name, stage="build", image=busybox_image, script=scripts[name],
            env={}, workspace=spaces[name], timeout=30,
            workspace_volume=jobspace.volume_of(ctx, spaces[name]),
        )  # fmt: skip
        result = docker_runner.run_job(spec, seen[name].append, threading.Event())
        assert result.outcome is Outcome.SUCCESS, seen[name]

    threads = [threading.Thread(target=run, args=(n,)) for n in scripts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen["left"][-1] == "left"
    assert seen["right"][-3:] == ["right", "original", "k"]
    assert (ctx.workspace / "committed.txt").read_text() == "original\n"
    assert (ctx.workspace / "dir" / "keep.txt").exists()
    jobspace.collect_artifacts(ctx, jobs[0], spaces["left"], Status.SUCCESS, print)
    handed = jobspace._state(ctx).handed["left"]
    assert {rel: p.read_text() for rel, p in handed.files} == {
        "committed.txt": "left\n",
        "same.txt": "left\n",
    }
    assert "dir" not in tree_files(spaces["left"])  # the job removed it: the merge agrees
    for job in jobs:
        jobspace.close_workspace(ctx, job, spaces[job.name])
    jobspace.finish_run(ctx)
    client = docker_runner._docker()
    left = client.api.volumes(filters={"label": f"cicd.run={ctx.key}"})
    assert not (left or {}).get("Volumes")
    assert not jobspace.jobs_root(ctx.workspace).exists()


def test_run_in_restores_caches_before_artifacts_so_artifacts_win(tmp_path: Path) -> None:
    """GitLab restores a job's cache, then its dependencies' artifacts: same path, artifact."""
    import types

    from backend import caching, execution
    from backend.pipeline.model import Cache

    seen: list[str] = []

    class Reading(FakeRunner):
        def run_job(self, spec: Any, on_line: Any, cancel: Any) -> Any:
            seen.append((spec.workspace / "x.txt").read_text())
            return super().run_job(spec, on_line, cancel)

    cache = Cache(key="k", paths=["x.txt"], policy="pull")
    jobs = [_job("a", "build"), _job("c", "test", dependencies=["a"], cache=[cache])]
    ctx = _context(tmp_path, jobs, runner=Reading(), cache_dir=tmp_path / "cache")
    ctx.recorder = types.SimpleNamespace(  # type: ignore[assignment]
        job_finished=lambda *args, **kwargs: None, job_usage=lambda *args: None, run_id=1,
        number=1, name="p#1",
    )
    cached = tmp_path / "earlier"
    _write(cached, {"x.txt": "from the cache"})
    caching.save_caches(ctx, jobs[1].model_copy(update={"cache": [cache.model_copy(
        update={"policy": "push"})]}), cached, Status.SUCCESS, print)  # fmt: skip
    stored = tmp_path / "artifact-x.txt"
    stored.write_text("from a's artifacts")
    jobspace._state(ctx).handed["a"] = jobspace.Handed(files=[("x.txt", stored)])
    workspace = jobspace.open_workspace(ctx, jobs[1], print)
    try:
        assert execution._run_in(ctx, jobs[1], workspace, print) is Status.SUCCESS
    finally:
        jobspace.close_workspace(ctx, jobs[1], workspace)
        jobspace.finish_run(ctx)
    assert seen == ["from a's artifacts"]
