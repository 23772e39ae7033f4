"""``cicd run --repo URL`` through the local daemon: credentials in the URL reach git for the
fetch, and nothing under ``CICD_HOME`` ever holds them (the real console script and daemon)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from gitkit import auth_git_server

from cicd_cli.daemon import stop_daemon

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))  # not a package
from e2ekit import BUSYBOX, Project, git

pytestmark = pytest.mark.docker

ONE = f"""\
pipeline: {{name: one, image: {BUSYBOX}}}
jobs:
  - {{name: hello, stage: build, script: "cat README"}}
"""


@pytest.fixture
def project(tmp_path: Path, prefect_api: str) -> Iterator[Project]:
    """A project whose ``cicd run`` goes through a daemon; the daemon is stopped after."""
    made = Project.create(tmp_path / "project")
    del made.env["CICD_DAEMON"]
    made.commit({".pipelines/pipeline.yaml": ONE, "README": "from the private remote\n"})
    yield made
    stop_daemon(made.home)


def test_daemon_run_repo_url_with_credentials_fetches_and_stores_none(
    project: Project, tmp_path: Path
) -> None:
    bare = tmp_path / "bare.git"
    git(tmp_path, "clone", "-q", "--bare", str(project.repo), str(bare))
    with auth_git_server(bare, "bob", "s3cret") as server:
        out = project.run("--repo", server.url.replace("http://", "http://bob:s3cret@"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.lines[0].startswith("one#1  .pipelines/pipeline.yaml at ")
    assert "from the private remote" in out.job_lines("hello")
    assert "s3cret" not in out.stdout + out.stderr
    leaks = [
        str(p) for p in project.home.rglob("*") if p.is_file() and b"s3cret" in p.read_bytes()
    ]
    assert leaks == []
