"""Which repositories a server takes, over real HTTP: a team server takes a bundle or a URL of
its allow-list (CICD_ALLOWED_REPOS), never a path of its disk; only the local daemon reads paths.
Whatever the way in, nothing a repository configures (fsmonitor, hooks, filters) ever runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from apikit import PIPELINE, Api, follow, git, make_repo
from gitkit import auth_git_server, fired, hostile_home, hostile_repo

from backend.api.repos import check_allowed
from backend.errors import RepoError
from backend.requests import PreparedRun
from backend.source.bundles import make_bundle


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    """A repository holding the demo pipeline whose own config sets traps (``tmp_path/fired``)."""
    return hostile_repo(
        tmp_path / "evil", tmp_path / "fired",
        {".pipelines/pipeline.yaml": PIPELINE, "README": "hello\n"},
    ).path


def post(api: Api, prepared: PreparedRun, repo: str, commit: str | None = None) -> tuple[int, str]:
    """POST the prepared request without a bundle, naming ``repo``; (status, detail or name)."""
    update = {"repo": repo, **({"commit": commit} if commit else {})}
    request = prepared.request.model_copy(update=update)
    with api.client() as client:
        reply = client.post("/runs", data={"request": request.model_dump_json()})
    body = reply.json()
    return reply.status_code, body.get("detail") or body.get("name")


def test_submit_path_to_a_server_is_refused_and_runs_none_of_its_git(
    api: Api, repo: Path, hostile: Path, tmp_path: Path, prepare: Callable[..., PreparedRun]
) -> None:
    commit = git(hostile, "rev-parse", "HEAD")
    status, detail = post(api, prepare(repo), str(hostile), commit)
    assert (status, detail) == (422, (
        f"{hostile}: this server does not read repositories on its disk; send a bundle of the "
        "commit, as cicd run --server does, or name a repository URL it allows "
        "(CICD_ALLOWED_REPOS)"
    ))
    assert fired(tmp_path / "fired") == []
    assert api.service.pipelines().pipelines == []


def test_submit_path_to_the_local_daemon_runs_without_any_of_its_git_config(
    start_api: Callable[..., Api], prefect_api: str, repo: Path, hostile: Path, tmp_path: Path,
    prepare: Callable[..., PreparedRun],
) -> None:
    api = start_api(local_paths=True)
    status, name = post(api, prepare(repo), str(hostile), git(hostile, "rev-parse", "HEAD"))
    assert (status, name) == (202, "demo#1")
    assert follow(api, "demo", 1)[-1]["status"] == "SUCCESS"
    assert fired(tmp_path / "fired") == []


def test_submit_allowed_file_url_runs_and_its_repository_config_does_not(
    start_api: Callable[..., Api], prefect_api: str, repo: Path, hostile: Path, tmp_path: Path,
    prepare: Callable[..., PreparedRun],
) -> None:
    api = start_api(allowed_repos=f"https://git.example.com/*, file://{tmp_path}/*")
    status, name = post(api, prepare(repo), f"file://{hostile}", git(hostile, "rev-parse", "HEAD"))
    assert (status, name) == (202, "demo#1")
    assert follow(api, "demo", 1)[-1]["status"] == "SUCCESS"
    assert api.service.run("demo", 1).commit == git(hostile, "rev-parse", "HEAD")
    assert fired(tmp_path / "fired") == []


def test_submit_url_not_in_the_allow_list_is_refused(
    start_api: Callable[..., Api], prefect_api: str, repo: Path,
    prepare: Callable[..., PreparedRun],
) -> None:
    api = start_api(allowed_repos="https://git.example.com/*")
    status, detail = post(api, prepare(repo), f"file://{repo}")
    assert (status, detail) == (422, (
        f"file://{repo}: not among the repositories this server may fetch (CICD_ALLOWED_REPOS); "
        "send a bundle of the commit, as cicd run --server does"
    ))
    assert not (api.settings.home / "repos").exists() or not any(
        p.name.endswith(".git") for p in (api.settings.home / "repos").iterdir()
    )


def test_submit_url_without_an_allow_list_is_refused(
    api: Api, repo: Path, prepare: Callable[..., PreparedRun]
) -> None:
    status, detail = post(api, prepare(repo), "https://bob:s3cret@git.example.com/x.git")
    assert (status, detail) == (422, (
        "https://bob:***@git.example.com/x.git: this server takes runs as git bundles only "
        "(CICD_ALLOWED_REPOS is empty); send a bundle of the commit, as cicd run --server does"
    ))


def test_submit_ext_url_is_refused_even_when_everything_is_allowed(
    start_api: Callable[..., Api], prefect_api: str, repo: Path, tmp_path: Path,
    prepare: Callable[..., PreparedRun],
) -> None:
    api = start_api(allowed_repos="*")
    marker = tmp_path / "ext-ran"
    status, detail = post(api, prepare(repo), f"ext::sh -c touch% {marker}")
    assert status == 422 and "transport 'ext' not allowed" in detail and "\n" not in detail
    assert not marker.exists()


def test_submit_corrupt_bundle_detail_names_no_server_path(
    api: Api, repo: Path, prepare: Callable[..., PreparedRun]
) -> None:
    request = prepare(repo).request
    with api.client() as client:
        reply = client.post(
            "/runs", data={"request": request.model_dump_json()},
            files={"bundle": ("b", b"not a bundle at all")},
        )
    assert reply.status_code == 422
    assert reply.json()["detail"] == (
        f"bad bundle for {request.repo}: the bundle does not look like a v2 or v3 bundle file"
    )


def test_submit_url_with_credentials_to_the_local_daemon_stores_none(
    start_api: Callable[..., Api], prefect_api: str, tmp_path: Path,
    prepare: Callable[..., PreparedRun],
) -> None:
    origin = make_repo(tmp_path / "origin")
    git(tmp_path, "clone", "-q", "--bare", str(origin), str(tmp_path / "bare.git"))
    api = start_api(local_paths=True)
    with auth_git_server(tmp_path / "bare.git", "bob", "s3cret") as server:
        url = server.url.replace("http://", "http://bob:s3cret@")
        status, name = post(api, prepare(origin), url)
        assert (status, name) == (202, "demo#1")
        assert follow(api, "demo", 1)[-1]["status"] == "SUCCESS"
    home = api.settings.home
    files = [p for p in home.rglob("*") if p.is_file()]
    assert [str(p) for p in files if b"s3cret" in p.read_bytes()] == []
    recorded = server.url.replace("http://", "http://bob:***@").encode()
    assert any(recorded in p.read_bytes() for p in files)  # the store has the redacted URL


def test_submit_bundle_with_committed_filters_runs_none_of_the_servers_git_config(
    api: Api, tmp_path: Path, prepare: Callable[..., PreparedRun],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = make_repo(tmp_path / "attrs")
    (repo / ".gitattributes").write_text("* filter=evil diff=evil\n")
    git(repo, "add", ".gitattributes")
    git(repo, "commit", "-q", "-m", "route every file through the server's filter")
    prepared = prepare(repo)
    # the server's user has filters, hooks and an fsmonitor in its own git config
    monkeypatch.setenv("HOME", str(hostile_home(tmp_path / "server-user", tmp_path / "fired")))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    reply = api.backend().submit(prepared, make_bundle(prepared.source))
    assert reply["name"] == "demo#1"
    assert follow(api, "demo", 1)[-1]["status"] == "SUCCESS"
    assert fired(tmp_path / "fired") == []


@pytest.mark.parametrize(("repo", "allowed"), [
    ("https://bob:s3cret@git.example.com/team/x.git", True),
    ("https://ghp_token@git.example.com/team/x.git", True),
    ("https://git.example.com/other/x.git", False),
    ("https://git.example.com.evil.test/team/x.git", False),
    ("git@git.example.com:team/x.git", True),
    ("ssh://git@git.example.com/team/x.git", False),
    ("file:///srv/git/x.git", False),
    ("https://git.example.com/team/../other/x.git", False),
])
def test_check_allowed_matches_the_url_without_credentials(repo: str, allowed: bool) -> None:
    setting = "https://git.example.com/team/*,  git@git.example.com:team/*"
    if allowed:
        check_allowed(repo, setting)
    else:
        with pytest.raises(RepoError, match=r"not among the repositories|may not name a parent"):
            check_allowed(repo, setting)


@pytest.mark.parametrize("repo", [
    "file:///srv/git/../../home/u/evil", "file:///srv/git/%2e%2e/x", "git.example.com:team/../x",
])
def test_check_allowed_parent_folder_is_refused(repo: str) -> None:
    with pytest.raises(RepoError) as err:
        check_allowed(repo, "file:///srv/git/* git.example.com:team/*")
    assert str(err.value) == f"{repo}: a repository URL may not name a parent folder ('..')"
