"""Running other repositories, branches and commits, with overrides: ``cicd run --repo ...``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from e2ekit import BUSYBOX, Project, git

pytestmark = pytest.mark.docker


def pipeline(message: str, artifact: str = "out.txt") -> str:
    """A one-job pipeline that writes ``message`` to an artifact file and prints it."""
    return f"""\
pipeline:
  name: versions
  image: {BUSYBOX}
  variables: {{GREETING: hello}}
jobs:
  - name: say
    stage: build
    script:
      - echo "{message} $GREETING" | tee {artifact}
      - cat version.txt
    artifacts: [{artifact}]
"""


@pytest.fixture
def upstream(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Another repository: two commits on main, one on branch 'feature'; shas by name."""
    source = Project.create(tmp_path / "upstream")
    shas = {"v1": source.commit({".pipelines/pipeline.yaml": pipeline("one"),
                                 "version.txt": "1\n"})}
    shas["v2"] = source.commit({".pipelines/pipeline.yaml": pipeline("two"), "version.txt": "2\n"})
    git(source.repo, "checkout", "-q", "-b", "feature")
    shas["feature"] = source.commit({"version.txt": "feature\n"})
    git(source.repo, "checkout", "-q", "main")
    return source.repo, shas


def test_run_repo_url_at_branch_and_older_commit(
    project: Project, upstream: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    repo, shas = upstream
    url = f"file://{repo}"
    runs = [
        (["--repo", url], "two hello", "2", shas["v2"], "main"),
        (["--repo", url, "--commit", shas["v1"][:10]], "one hello", "1", shas["v1"], None),
        (["--repo", url, "--branch", "feature"], "two hello", "feature", shas["feature"],
         "feature"),
        (["--repo", str(repo), "--branch", "main", "--commit", shas["v1"]], "one hello", "1",
         shas["v1"], "main"),
    ]
    for number, (args, said, version, sha, branch) in enumerate(runs, start=1):
        out = project.run(*args)
        assert out.returncode == 0, out.stdout + out.stderr
        assert out.lines[0].startswith(f"versions#{number}  .pipelines/pipeline.yaml at {sha[:12]}")
        lines = out.job_lines("say")
        assert lines.index(said) + 2 == lines.index(version)  # "$ cat version.txt" between
        report = project.report("versions", number)
        assert (report["commit"], report["branch"]) == (sha, branch)

    download = tmp_path / "download"
    got = project.cicd("artifacts", "versions#2", "--download", str(download))
    assert got.returncode == 0, got.stderr
    assert (download / "say" / "out.txt").read_text() == "one hello\n"


def test_run_repo_unknown_branch_and_commit_are_one_line_errors(
    project: Project, upstream: tuple[Path, dict[str, str]]
) -> None:
    repo, _ = upstream
    for args, message in [
        (["--branch", "nope"], "branch 'nope' not found"),
        (["--commit", "deadbeef"], "commit 'deadbeef' not found"),
    ]:
        out = project.run("--repo", f"file://{repo}", *args)
        assert out.returncode == 1
        assert out.stdout == ""
        assert len(out.stderr.splitlines()) == 1 and message in out.stderr, out.stderr


def test_run_outside_a_repository_is_a_clear_error(project: Project, tmp_path: Path) -> None:
    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    project.repo = outside
    out = project.run()
    assert out.returncode == 1
    assert out.stderr.startswith("error: not inside a git repository")
    assert len(out.stderr.splitlines()) == 1


def test_run_overrides_change_the_run_and_invalid_ones_are_positioned(
    project: Project, upstream: tuple[Path, dict[str, str]]
) -> None:
    repo, _ = upstream
    out = project.run(
        "--repo", str(repo),
        "--override", "pipeline.variables.GREETING=bonjour",
        "--override", "jobs.say.allow_failure=true",
        "--override", "jobs.say.image=cicd-missing:nope",
        "--pull", "never",
    )
    # the missing image fails the job, which is now allowed to fail: the pipeline succeeds
    assert out.returncode == 0, out.stdout + out.stderr
    job = project.report("versions", 1)["stages"][0]["jobs"][0]
    assert (job["image"], job["status"], job["allow_failure"]) == (
        "cicd-missing:nope", "FAILED", True
    )
    out = project.run("--repo", str(repo), "--override", "pipeline.variables.GREETING=bonjour")
    assert "two bonjour" in out.job_lines("say")

    bad = project.run("--repo", str(repo), "--override", "jobs.say.retry=7")
    assert bad.returncode == 1
    assert bad.stderr.startswith(".pipelines/pipeline.yaml:")
    assert "override 'jobs.say.retry=7'" in bad.stderr
    assert len(bad.stderr.splitlines()) == 1
    runs = json.loads(project.cicd("report", "-p", "versions", "--format", "json").stdout)
    assert [r["run"] for r in runs["runs"]] == [2, 1]  # the invalid one recorded nothing
