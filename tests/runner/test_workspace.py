"""Workspace sources and checkouts, against real git repositories made in tmp_path."""

from __future__ import annotations

import os
import stat
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from backend.errors import RepoError
from backend.source.bundles import make_bundle, source_from_bundle
from backend.source.workspace import (
    Source,
    WorkspaceCleanupError,
    checkout,
    remove_tree,
    request_key,
    resolve_source,
)


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` with a fixed identity; return its stripped stdout."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "T",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "T",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def commit_files(repo: Path, files: dict[str, str], message: str) -> str:
    """Write ``files``, commit everything, return the new sha."""
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@dataclass
class Repo:
    """A repository with ``main`` (c1 -> c2) and ``feature`` (c1 -> c3)."""

    path: Path
    c1: str
    c2: str
    c3: str


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    path = tmp_path / "proj"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    c1 = commit_files(path, {"a.txt": "one\n", "src/b.txt": "bee\n"}, "c1")
    (path / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (path / "run.sh").chmod(0o755)
    c2 = commit_files(path, {"a.txt": "two\n"}, "c2")
    git(path, "checkout", "-q", "-b", "feature", c1)
    c3 = commit_files(path, {"feature.txt": "f\n"}, "c3")
    git(path, "checkout", "-q", "main")
    return Repo(path, c1, c2, c3)


def tree_of(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative POSIX path -> bytes)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def committed_tree(repo: Path, commit: str) -> dict[str, bytes]:
    """Every file of ``commit`` as git stores it."""
    names = git(repo, "ls-tree", "-r", "--name-only", commit).splitlines()
    return {
        n: subprocess.run(
            ["git", "show", f"{commit}:{n}"], cwd=repo, capture_output=True, check=True
        ).stdout
        for n in names
    }


# --- resolve_source: local -----------------------------------------------------------------


def test_resolve_source_no_repo_uses_cwd_head(repo: Repo, tmp_path: Path) -> None:
    source = resolve_source(None, None, None, cwd=repo.path / "src", cache_dir=tmp_path / "c")
    assert (source.repo, source.branch, source.commit) == (str(repo.path), "main", repo.c2)
    assert source.git_dir == repo.path / ".git"
    assert source.dirty == []


def test_resolve_source_branch_gives_its_tip(repo: Repo, tmp_path: Path) -> None:
    source = resolve_source(None, "feature", None, cwd=repo.path, cache_dir=tmp_path / "c")
    assert (source.branch, source.commit) == ("feature", repo.c3)


def test_resolve_source_older_commit_by_full_and_short_sha(repo: Repo, tmp_path: Path) -> None:
    full = resolve_source(None, None, repo.c1, cwd=repo.path, cache_dir=tmp_path / "c")
    short = resolve_source(None, None, repo.c1[:7], cwd=repo.path, cache_dir=tmp_path / "c")
    assert full.commit == short.commit == repo.c1
    assert full.branch is None


def test_resolve_source_commit_with_branch_keeps_branch_without_ancestry_check(
    repo: Repo, tmp_path: Path
) -> None:
    source = resolve_source(None, "feature", repo.c2, cwd=repo.path, cache_dir=tmp_path / "c")
    assert (source.branch, source.commit) == ("feature", repo.c2)


def test_resolve_source_any_rev_as_commit(repo: Repo, tmp_path: Path) -> None:
    source = resolve_source(None, None, "main~1", cwd=repo.path, cache_dir=tmp_path / "c")
    assert source.commit == repo.c1


def test_resolve_source_detached_head_has_no_branch(repo: Repo, tmp_path: Path) -> None:
    git(repo.path, "checkout", "-q", "--detach", repo.c1)
    source = resolve_source(None, None, None, cwd=repo.path, cache_dir=tmp_path / "c")
    assert (source.branch, source.commit) == (None, repo.c1)


def test_resolve_source_dirty_lists_uncommitted_and_untracked(repo: Repo, tmp_path: Path) -> None:
    (repo.path / "a.txt").write_text("changed\n")
    (repo.path / "new.txt").write_text("new\n")
    git(repo.path, "mv", "src/b.txt", "src/moved.txt")
    source = resolve_source(None, None, None, cwd=repo.path, cache_dir=tmp_path / "c", dirty=True)
    assert sorted(source.dirty) == ["a.txt", "new.txt", "src/moved.txt"]


def test_resolve_source_dirty_empty_when_building_another_commit(
    repo: Repo, tmp_path: Path
) -> None:
    (repo.path / "a.txt").write_text("changed\n")
    source = resolve_source(
        None, "feature", None, cwd=repo.path, cache_dir=tmp_path / "c", dirty=True
    )
    assert source.dirty == []


def test_resolve_source_local_path_relative_to_cwd(repo: Repo, tmp_path: Path) -> None:
    source = resolve_source("proj", "feature", None, cwd=tmp_path, cache_dir=tmp_path / "c")
    assert (source.repo, source.commit) == (str(repo.path), repo.c3)


def test_resolve_source_local_bare_repo_used_in_place(repo: Repo, tmp_path: Path) -> None:
    git(tmp_path, "clone", "-q", "--bare", str(repo.path), "bare.git")
    source = resolve_source(
        str(tmp_path / "bare.git"), None, None, cwd=tmp_path, cache_dir=tmp_path / "c"
    )
    assert (source.repo, source.branch, source.commit) == (
        str(tmp_path / "bare.git"),
        "main",
        repo.c2,
    )
    assert source.git_dir == tmp_path / "bare.git"
    assert not (tmp_path / "c").exists()


# --- resolve_source: URLs --------------------------------------------------------------------


def test_resolve_source_file_url_clones_into_cache(repo: Repo, tmp_path: Path) -> None:
    url = f"file://{repo.path}"
    cache = tmp_path / "cache"
    source = resolve_source(url, None, None, cwd=tmp_path, cache_dir=cache)
    assert (source.repo, source.branch, source.commit) == (url, "main", repo.c2)
    assert source.git_dir.parent == cache
    feature = resolve_source(url, "feature", None, cwd=tmp_path, cache_dir=cache)
    old = resolve_source(url, None, repo.c1[:8], cwd=tmp_path, cache_dir=cache)
    assert (feature.commit, old.commit) == (repo.c3, repo.c1)
    assert feature.git_dir == source.git_dir


def test_resolve_source_url_fetches_new_commits(repo: Repo, tmp_path: Path) -> None:
    url = f"file://{repo.path}"
    resolve_source(url, None, None, cwd=tmp_path, cache_dir=tmp_path / "c")
    c4 = commit_files(repo.path, {"later.txt": "x\n"}, "c4")
    source = resolve_source(url, "main", None, cwd=tmp_path, cache_dir=tmp_path / "c")
    assert source.commit == c4


def test_resolve_source_url_default_branch_follows_remote_head(repo: Repo, tmp_path: Path) -> None:
    url = f"file://{repo.path}"
    resolve_source(url, None, None, cwd=tmp_path, cache_dir=tmp_path / "c")
    git(repo.path, "checkout", "-q", "feature")
    source = resolve_source(url, None, None, cwd=tmp_path, cache_dir=tmp_path / "c")
    assert (source.branch, source.commit) == ("feature", repo.c3)


# --- resolve_source: errors ------------------------------------------------------------------


def test_resolve_source_outside_repo_fails(tmp_path: Path) -> None:
    with pytest.raises(RepoError) as err:
        resolve_source(None, None, None, cwd=tmp_path, cache_dir=tmp_path / "c")
    assert str(err.value) == f"not inside a git repository: {tmp_path} (use --repo PATH|URL)"


def test_resolve_source_path_not_a_repo_fails(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(RepoError) as err:
        resolve_source("plain", None, None, cwd=tmp_path, cache_dir=tmp_path / "c")
    assert str(err.value) == f"{tmp_path / 'plain'} is not a git repository"


def test_resolve_source_subdir_of_repo_is_not_a_repo(repo: Repo, tmp_path: Path) -> None:
    with pytest.raises(RepoError) as err:
        resolve_source(str(repo.path / "src"), None, None, cwd=tmp_path, cache_dir=tmp_path)
    assert str(err.value) == f"{repo.path / 'src'} is not a git repository"


def test_resolve_source_unknown_branch_fails(repo: Repo, tmp_path: Path) -> None:
    with pytest.raises(RepoError) as err:
        resolve_source(None, "nope", None, cwd=repo.path, cache_dir=tmp_path / "c")
    assert str(err.value) == f"branch 'nope' not found in {repo.path}"


def test_resolve_source_unknown_commit_fails(repo: Repo, tmp_path: Path) -> None:
    with pytest.raises(RepoError) as err:
        resolve_source(None, None, "abc1234", cwd=repo.path, cache_dir=tmp_path / "c")
    assert str(err.value) == f"commit 'abc1234' not found in {repo.path}"


def test_resolve_source_option_like_commit_fails(repo: Repo, tmp_path: Path) -> None:
    with pytest.raises(RepoError) as err:
        resolve_source(None, None, "--all", cwd=repo.path, cache_dir=tmp_path / "c")
    assert str(err.value) == f"commit '--all' not found in {repo.path}"


def test_resolve_source_unknown_commit_in_url_fails(repo: Repo, tmp_path: Path) -> None:
    url = f"file://{repo.path}"
    with pytest.raises(RepoError) as err:
        resolve_source(url, None, "f" * 40, cwd=tmp_path, cache_dir=tmp_path / "c")
    assert str(err.value) == f"commit '{'f' * 40}' not found in {url}"


def test_resolve_source_bad_url_fails(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/missing"
    with pytest.raises(RepoError) as err:
        resolve_source(url, None, None, cwd=tmp_path, cache_dir=tmp_path / "c")
    assert str(err.value) == (
        f"cannot clone {url}: '{tmp_path}/missing' does not appear to be a git repository"
    )
    assert [p.name for p in (tmp_path / "c").iterdir() if not p.name.endswith(".lock")] == []


def test_resolve_source_bad_url_hides_password(tmp_path: Path) -> None:
    with pytest.raises(RepoError) as err:
        resolve_source(
            "https://bob:s3cret@127.0.0.1:1/x.git", None, None, cwd=tmp_path, cache_dir=tmp_path
        )
    assert str(err.value).startswith("cannot clone https://bob:***@127.0.0.1:1/x.git: ")
    assert "s3cret" not in str(err.value)


def test_resolve_source_empty_repo_fails(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "empty")
    with pytest.raises(RepoError) as err:
        resolve_source("empty", None, None, cwd=tmp_path, cache_dir=tmp_path / "c")
    assert str(err.value) == f"{tmp_path / 'empty'} has no commits"


# --- checkout ------------------------------------------------------------------------------


def test_checkout_matches_commit_tree_without_uncommitted_changes(
    repo: Repo, tmp_path: Path
) -> None:
    (repo.path / "a.txt").write_text("uncommitted\n")
    (repo.path / "untracked.txt").write_text("u\n")
    source = resolve_source(None, None, None, cwd=repo.path, cache_dir=tmp_path / "c")
    checkout(source, tmp_path / "ws")
    assert tree_of(tmp_path / "ws") == committed_tree(repo.path, repo.c2)
    assert os.access(tmp_path / "ws" / "run.sh", os.X_OK)
    assert not (tmp_path / "ws" / ".git").exists()


def test_checkout_leaves_source_repo_untouched(repo: Repo, tmp_path: Path) -> None:
    git(repo.path, "add", "-A")  # no-op, but the index now exists
    before = (repo.path / ".git" / "index").read_bytes()
    source = resolve_source(None, "feature", None, cwd=repo.path, cache_dir=tmp_path / "c")
    checkout(source, tmp_path / "ws")
    assert (repo.path / ".git" / "index").read_bytes() == before
    assert git(repo.path, "status", "--porcelain") == ""
    assert git(repo.path, "rev-parse", "--abbrev-ref", "HEAD") == "main"


def test_checkout_two_workspaces_are_isolated(repo: Repo, tmp_path: Path) -> None:
    cache = tmp_path / "c"
    checkout(resolve_source(None, None, repo.c1, cwd=repo.path, cache_dir=cache), tmp_path / "w1")
    checkout(resolve_source(None, None, repo.c2, cwd=repo.path, cache_dir=cache), tmp_path / "w2")
    (tmp_path / "w1" / "a.txt").write_text("job wrote this\n")
    assert (tmp_path / "w2" / "a.txt").read_text() == "two\n"
    assert tree_of(tmp_path / "w2") == committed_tree(repo.path, repo.c2)
    assert not (tmp_path / "w1" / "run.sh").exists()


def test_checkout_from_url_clone(repo: Repo, tmp_path: Path) -> None:
    source = resolve_source(
        f"file://{repo.path}", "feature", None, cwd=tmp_path, cache_dir=tmp_path / "c"
    )
    checkout(source, tmp_path / "ws")
    assert tree_of(tmp_path / "ws") == committed_tree(repo.path, repo.c3)


def test_checkout_into_non_empty_dir_fails(repo: Repo, tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "x").write_text("x")
    source = resolve_source(None, None, None, cwd=repo.path, cache_dir=tmp_path / "c")
    with pytest.raises(RepoError) as err:
        checkout(source, tmp_path / "ws")
    assert str(err.value) == f"cannot check out {repo.c2[:12]}: the workspace is not empty"


# --- remove_tree ---------------------------------------------------------------------------


def test_remove_tree_read_only_and_unreadable_dirs(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "ro" / "deep").mkdir(parents=True)
    (ws / "ro" / "deep" / "f").write_text("x")
    (ws / "locked").mkdir()
    (ws / "locked" / "g").write_text("y")
    (ws / "ro" / "deep").chmod(0o500)
    (ws / "ro").chmod(0o500)
    (ws / "locked").chmod(0)
    remove_tree(ws)
    assert not ws.exists()


def test_remove_tree_does_not_follow_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    outside.chmod(0o500)
    ws = tmp_path / "ws"
    (ws / "ro").mkdir(parents=True)
    (ws / "ro" / "link").symlink_to(outside)
    (ws / "ro").chmod(0o500)
    remove_tree(ws)
    assert not ws.exists()
    assert (outside / "keep.txt").read_text() == "keep"
    assert stat.S_IMODE(outside.stat().st_mode) == 0o500
    outside.chmod(0o700)


def test_remove_tree_symlink_root_only_unlinks(tmp_path: Path) -> None:
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "f").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    remove_tree(tmp_path / "link")
    assert not (tmp_path / "link").exists()
    assert (tmp_path / "target" / "f").exists()


def test_remove_tree_missing_path_is_fine(tmp_path: Path) -> None:
    remove_tree(tmp_path / "nothing")


def test_remove_tree_uses_fallback_when_still_present(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    calls: list[Path] = []
    monkeypatch.setattr("backend.source.workspace.shutil.rmtree", lambda *a, **k: None)

    def fallback(path: Path) -> None:
        calls.append(path)
        path.rmdir()

    remove_tree(ws, fallback=fallback)
    assert calls == [ws]
    assert not ws.exists()


def test_remove_tree_reports_what_is_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    monkeypatch.setattr("backend.source.workspace.shutil.rmtree", lambda *a, **k: None)
    with pytest.raises(WorkspaceCleanupError) as err:
        remove_tree(ws)
    assert str(err.value) == f"cannot remove workspace {ws}: {ws}"


# --- bundles -------------------------------------------------------------------------------


def test_bundle_round_trip_into_another_cache(repo: Repo, tmp_path: Path) -> None:
    local = resolve_source(None, "feature", None, cwd=repo.path, cache_dir=tmp_path / "c1")
    data = make_bundle(local)
    refs_before = git(repo.path, "for-each-ref")
    remote = source_from_bundle(data, local.commit, "feature", "proj", tmp_path / "server")
    assert (remote.repo, remote.branch, remote.commit) == ("proj", "feature", repo.c3)
    assert remote.git_dir.parent == tmp_path / "server"
    checkout(remote, tmp_path / "ws")
    assert tree_of(tmp_path / "ws") == committed_tree(repo.path, repo.c3)
    assert git(repo.path, "for-each-ref") == refs_before


def test_bundle_second_commit_shares_repository(repo: Repo, tmp_path: Path) -> None:
    server = tmp_path / "server"
    first = resolve_source(None, None, repo.c1, cwd=repo.path, cache_dir=tmp_path)
    second = resolve_source(None, None, repo.c2, cwd=repo.path, cache_dir=tmp_path)
    a = source_from_bundle(make_bundle(first), repo.c1, None, "proj", server)
    b = source_from_bundle(make_bundle(second), repo.c2, "main", "proj", server)
    assert a.git_dir == b.git_dir
    assert (a.commit, b.commit) == (repo.c1, repo.c2)


def test_source_from_bundle_same_bytes_again_runs_no_git_bundle_or_fetch(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import backend.source.bundles as bundles

    server = tmp_path / "server"
    data = make_bundle(resolve_source(None, None, repo.c2, cwd=repo.path, cache_dir=tmp_path))
    other = make_bundle(resolve_source(None, None, repo.c3, cwd=repo.path, cache_dir=tmp_path))
    first = source_from_bundle(data, repo.c2, None, "proj", server)
    calls: list[str] = []
    real = bundles.git

    def counted(*args: str, **kwargs: Any) -> Any:
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(bundles, "git", counted)
    again = source_from_bundle(data, repo.c2, "main", "proj", server)
    third = source_from_bundle(other, repo.c3, None, "proj", server)

    assert (again.git_dir, again.commit, again.branch) == (first.git_dir, repo.c2, "main")
    assert third.commit == repo.c3
    assert calls == ["bundle", "fetch"]  # only for the other bundle's bytes
    checkout(again, tmp_path / "ws")
    assert tree_of(tmp_path / "ws") == committed_tree(repo.path, repo.c2)


def test_source_from_bundle_garbage_fails(tmp_path: Path) -> None:
    with pytest.raises(RepoError) as err:
        source_from_bundle(b"not a bundle", "a" * 40, None, "proj", tmp_path)
    assert str(err.value).startswith("bad bundle for proj: ")
    assert "\n" not in str(err.value)


def test_source_from_bundle_same_garbage_again_is_verified_again(tmp_path: Path) -> None:
    for _ in range(2):  # a failed fetch leaves no refs that would let the same bytes through
        with pytest.raises(RepoError) as err:
            source_from_bundle(b"not a bundle", "a" * 40, None, "proj", tmp_path)
        assert str(err.value).startswith("bad bundle for proj: ")
    (git_dir,) = tmp_path.glob("bundle-proj-*.git")
    assert not (git_dir / "refs" / "bundles").exists() or not any(
        (git_dir / "refs" / "bundles").iterdir()
    )


def test_source_from_bundle_missing_commit_fails(repo: Repo, tmp_path: Path) -> None:
    data = make_bundle(resolve_source(None, None, repo.c1, cwd=repo.path, cache_dir=tmp_path))
    with pytest.raises(RepoError) as err:
        source_from_bundle(data, repo.c3, None, "proj", tmp_path / "server")
    assert str(err.value) == f"commit '{repo.c3}' not found in the bundle for proj"


# --- request_key ---------------------------------------------------------------------------


def test_request_key_changes_with_content_commit_and_pipeline(tmp_path: Path) -> None:
    source = Source(repo="/r", branch="main", commit="a" * 40, git_dir=tmp_path)
    key = request_key(source, "ci", "jobs: []\n")
    assert len(key) == 64
    assert key == request_key(source, "ci", b"jobs: []\n")
    other_branch = Source(repo="/r", branch="dev", commit="a" * 40, git_dir=tmp_path / "x")
    assert key == request_key(other_branch, "ci", "jobs: []\n")
    other_commit = Source(repo="/r", branch="main", commit="b" * 40, git_dir=tmp_path)
    assert (
        len(
            {
                key,
                request_key(source, "ci", "jobs: [x]\n"),
                request_key(source, "cd", "jobs: []\n"),
                request_key(other_commit, "ci", "jobs: []\n"),
            }
        )
        == 4
    )


def test_resolve_source_same_url_from_many_threads(repo: Repo, tmp_path: Path) -> None:
    url = f"file://{repo.path}"
    with ThreadPoolExecutor(4) as pool:
        sources = list(
            pool.map(
                lambda b: resolve_source(url, b, None, cwd=tmp_path, cache_dir=tmp_path / "c"),
                ["main", "feature", "main", "feature"],
            )
        )
    assert [s.commit for s in sources] == [repo.c2, repo.c3, repo.c2, repo.c3]
    assert len({s.git_dir for s in sources}) == 1
