"""git never runs anything a repository, a config or a remote supplies; it ends within its time
limit; credentials in a URL are never written down. Real git, real repositories in tmp_path."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from gitkit import (
    auth_git_server,
    fired,
    hostile_home,
    hostile_repo,
    run_git,
    silent_git_daemon,
)

from backend.errors import RepoError, UsageError
from backend.requests import prepare_run
from backend.source.bundles import make_bundle, source_from_bundle
from backend.source.gitfiles import read_committed
from backend.source.workspace import checkout, redact_url, resolve_source

PIPELINE = "pipeline: {name: p}\njobs:\n  - {name: j, stage: build, script: x}\n"
FILES = {".pipelines/pipeline.yaml": PIPELINE, "README": "hello\n"}


def tree_of(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative POSIX path -> bytes)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_git_hostile_global_config_runs_nothing_on_any_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    markers = tmp_path / "fired"
    repo = tmp_path / "proj"
    repo.mkdir()
    run_git(repo, "init", "-q", "-b", "main")
    files = {**FILES, ".gitattributes": "* filter=evil diff=evil\n"}  # the server's filter
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    run_git(repo, "add", "-A")
    run_git(repo, "commit", "-q", "-m", "c1")
    (repo / "README").write_text("uncommitted\n")
    monkeypatch.setenv("HOME", str(hostile_home(tmp_path / "hostile", markers)))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    cache = tmp_path / "cache"

    local = resolve_source(None, None, None, cwd=repo, cache_dir=cache, dirty=True)
    checkout(local, tmp_path / "ws-local")
    served = source_from_bundle(make_bundle(local), local.commit, "main", "proj", tmp_path / "srv")
    checkout(served, tmp_path / "ws-bundle")
    cloned = resolve_source(f"file://{repo}", None, None, cwd=tmp_path, cache_dir=cache)
    checkout(cloned, tmp_path / "ws-url")
    text = read_committed(cloned.git_dir, cloned.commit, ".pipelines/pipeline.yaml")

    assert fired(markers) == []
    assert local.dirty == ["README"]
    assert text == FILES[".pipelines/pipeline.yaml"]
    for ws in ("ws-local", "ws-bundle", "ws-url"):
        assert tree_of(tmp_path / ws) == {k: v.encode() for k, v in files.items()}


def test_git_hostile_repository_config_runs_nothing_when_served(tmp_path: Path) -> None:
    markers = tmp_path / "fired"
    hostile = hostile_repo(tmp_path / "evil", markers, FILES)
    cache = tmp_path / "cache"

    by_path = resolve_source(str(hostile.path), None, None, cwd=tmp_path, cache_dir=cache)
    checkout(by_path, tmp_path / "ws-path")
    by_url = resolve_source(f"file://{hostile.path}", None, None, cwd=tmp_path, cache_dir=cache)
    checkout(by_url, tmp_path / "ws-url")
    bundle = make_bundle(by_path)
    checkout(source_from_bundle(bundle, hostile.commit, None, "evil", tmp_path / "srv"),
             tmp_path / "ws-bundle")

    assert fired(markers) == []
    assert by_path.dirty == []  # a server never asks git status about a repository
    for ws in ("ws-path", "ws-url", "ws-bundle"):
        assert tree_of(tmp_path / ws)["README"] == b"hello\n"


def test_git_ext_remote_refused_even_when_the_environment_allows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "ext-ran"
    monkeypatch.setenv("GIT_ALLOW_PROTOCOL", "ext:file")  # inherited from some shell or hook
    with pytest.raises(RepoError) as err:
        resolve_source(f"ext::sh -c touch% {marker}", None, None, cwd=tmp_path,
                       cache_dir=tmp_path / "c")
    assert not marker.exists()
    assert str(err.value).startswith(f"cannot clone ext::sh -c touch% {marker}: ")
    assert "transport 'ext' not allowed" in str(err.value) and "\n" not in str(err.value)


def failure_within(seconds: float, call: Callable[[], object]) -> BaseException | None:
    """What ``call`` raised (None if nothing), failing the test if it runs past ``seconds``."""
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    return outcome[0]


def test_git_fd_remote_refused_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_ALLOW_PROTOCOL", "fd:file")
    error = failure_within(
        20, lambda: resolve_source("fd::0", None, None, cwd=tmp_path, cache_dir=tmp_path / "c")
    )
    assert isinstance(error, RepoError)
    assert str(error) == "cannot clone fd::0: transport 'fd' not allowed"


def test_git_silent_remote_times_out_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CICD_GIT_TIMEOUT", "2")
    with silent_git_daemon() as (url, connections):
        started = time.monotonic()
        error = failure_within(
            20, lambda: resolve_source(url, None, None, cwd=tmp_path, cache_dir=tmp_path / "c")
        )
        took = time.monotonic() - started
        assert connections, "git never reached the silent server"
        connections[0].settimeout(5)
        while connections[0].recv(4096):  # git's request, then EOF: git is gone, killed
            pass
    assert isinstance(error, RepoError)
    assert str(error) == f"cannot clone {url}: timed out after 2 s"
    assert 2 <= took < 10
    assert [p.name for p in (tmp_path / "c").iterdir() if not p.name.endswith(".lock")] == []


def test_git_timeout_setting_not_a_number_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CICD_GIT_TIMEOUT", "soon")
    with pytest.raises(UsageError) as err:
        resolve_source(f"file://{tmp_path}", None, None, cwd=tmp_path, cache_dir=tmp_path / "c")
    assert str(err.value) == "CICD_GIT_TIMEOUT='soon': expected a positive number of seconds"


def test_resolve_source_url_credentials_reach_git_but_are_never_written(tmp_path: Path) -> None:
    origin = tmp_path / "origin"
    origin.mkdir()
    run_git(origin, "init", "-q", "-b", "main")
    (origin / "README").write_text("private\n")
    run_git(origin, "add", "-A")
    run_git(origin, "commit", "-q", "-m", "c1")
    sha = run_git(origin, "rev-parse", "HEAD")
    run_git(tmp_path, "clone", "-q", "--bare", str(origin), "bare.git")
    home = tmp_path / "cicd-home"
    with auth_git_server(tmp_path / "bare.git", "bob", "s3cret") as server:
        url = server.url.replace("http://", "http://bob:s3cret@")
        first = resolve_source(url, None, None, cwd=tmp_path, cache_dir=home / "repos")
        again = resolve_source(url, "main", None, cwd=tmp_path, cache_dir=home / "repos")
        assert server.seen and set(server.seen) == {"Basic Ym9iOnMzY3JldA=="}
    assert first.commit == again.commit == sha
    config = run_git(first.git_dir, "config", "--get", "remote.origin.url")
    assert config == server.url
    leaks = [str(p) for p in home.rglob("*") if p.is_file() and b"s3cret" in p.read_bytes()]
    assert leaks == []


def test_resolve_source_url_wrong_credentials_is_one_line_without_them(tmp_path: Path) -> None:
    run_git(tmp_path, "init", "-q", "--bare", "bare.git")
    with auth_git_server(tmp_path / "bare.git", "bob", "right") as server:
        url = server.url.replace("http://", "http://bob:wrong@")
        with pytest.raises(RepoError) as err:
            resolve_source(url, None, None, cwd=tmp_path, cache_dir=tmp_path / "c")
    message = str(err.value)
    assert message.startswith(f"cannot clone {server.url.replace('http://', 'http://bob:***@')}: ")
    assert "wrong" not in message and "\n" not in message


def test_redact_url_hides_passwords_and_lone_http_tokens() -> None:
    assert redact_url("https://bob:s3cret@host/x.git") == "https://bob:***@host/x.git"
    assert redact_url("https://ghp_token@github.com/o/x") == "https://***@github.com/o/x"
    assert redact_url("ssh://git@host/x.git") == "ssh://git@host/x.git"
    assert redact_url("git@host:o/x.git") == "git@host:o/x.git"
    assert redact_url("https://host/x.git") == "https://host/x.git"


def test_resolve_source_without_local_paths_refuses_a_path(tmp_path: Path) -> None:
    hostile = hostile_repo(tmp_path / "evil", tmp_path / "fired", FILES)
    with pytest.raises(RepoError) as err:
        resolve_source(str(hostile.path), None, None, cwd=tmp_path, cache_dir=tmp_path / "c",
                       local_paths=False)
    assert str(err.value) == (
        f"{hostile.path}: this server takes a git bundle or a repository URL, "
        "never a path on its disk"
    )
    assert fired(tmp_path / "fired") == []


def test_prepare_run_of_a_worker_asks_no_git_status(tmp_path: Path) -> None:
    # a Prefect worker's deployment flow prepares runs of the repository its parameters name
    hostile = hostile_repo(tmp_path / "evil", tmp_path / "fired", FILES)
    prepared = prepare_run(cwd=tmp_path, cache_dir=tmp_path / "c", repo=str(hostile.path))
    assert (prepared.request.commit, prepared.source.dirty) == (hostile.commit, [])
    assert fired(tmp_path / "fired") == []
