"""Two real projects' ``.gitlab-ci.yml`` run unchanged by ``cicd run``, end to end.

The projects are PyPI source distributions of pure-Python libraries (more-itertools, six),
downloaded once into ``CICD_SDIST_CACHE`` (default ``/var/cache/cicd-sdists``) and unpacked
into a fresh git repository with ``examples/gitlab/<project>.gitlab-ci.yml``: lint, tests split
over parallel jobs with JUnit reports, a build whose artifacts and dotenv reach a later job, an
allowed failure and jobs with a busybox ``httpd`` service. Each job must end as GitLab ends it
(the same outcomes gitlab-ci-local 4.70.1 gives on the same file: bench/gitlab_projects.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from e2ekit import Project, containers_of_home, jobs

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "gitlab"
SDISTS = Path(os.environ.get("CICD_SDIST_CACHE", "/var/cache/cicd-sdists"))
PROJECTS = {"more-itertools": "more-itertools==11.2.1", "six": "six==1.17.0"}


def sdist(project: str) -> Path:
    """The project's sdist from the cache, downloaded from PyPI the first time."""
    stem = PROJECTS[project].split("==")[0].replace("-", "_")
    version = PROJECTS[project].split("==")[1]
    path = SDISTS / f"{stem}-{version}.tar.gz"
    if not path.exists():
        SDISTS.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--dest",
                str(SDISTS),
                PROJECTS[project],
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        if done.returncode != 0 or not path.exists():
            pytest.fail(
                f"cannot download {PROJECTS[project]} from PyPI into {SDISTS}: "
                f"{done.stderr.strip()[-500:]}"
            )
    return path


def import_project(project: Project, name: str) -> None:
    """Commit the sdist's files and the example pipeline into ``project``'s repository."""
    with tarfile.open(sdist(name)) as archive:
        top = archive.getnames()[0].split("/")[0]
        archive.extractall(project.repo, filter="data")
    for item in (project.repo / top).iterdir():
        shutil.move(str(item), project.repo / item.name)
    (project.repo / top).rmdir()
    shutil.copy(EXAMPLES / f"{name}.gitlab-ci.yml", project.repo / ".gitlab-ci.yml")
    subprocess.run(["git", "add", "-A"], cwd=project.repo, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "import"], cwd=project.repo, check=True)


def networks_of(home: Path) -> list[str]:
    """Docker networks left by runs of ``home`` (cicd labels them like its containers)."""
    out = subprocess.run(
        ["docker", "network", "ls", "-q", "--filter", "label=cicd.managed"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    return [
        n
        for n in out
        if str(home)
        in subprocess.run(
            ["docker", "network", "inspect", n, "--format", "{{json .Labels}}"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
    ]


def test_gitlab_project_more_itertools_runs_as_gitlab(project: Project) -> None:
    import_project(project, "more-itertools")
    out = project.run(timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    report = project.report("repo", 1)
    statuses = {name: job["status"] for name, job in jobs(report).items()}
    assert statuses == {
        "lint": "SUCCESS",
        "test 1/3": "SUCCESS",
        "test 2/3": "SUCCESS",
        "test 3/3": "SUCCESS",
        "build": "SUCCESS",
        "smoke": "SUCCESS",
    }
    # the dotenv of build reached smoke, which got build's artifacts and not the tests'
    assert any("smoke testing more-itertools 11.2.1" in line for line in out.job_lines("smoke"))
    # every test job's JUnit report was read: together they ran the whole suite, none failed
    tests = [jobs(report)[f"test {i}/3"]["tests"] for i in (1, 2, 3)]
    assert all(t["total"] > 0 and t["failed"] == 0 and t["errors"] == 0 for t in tests)
    assert sum(t["total"] for t in tests) > 1000
    artifacts = project.cicd("artifacts", "repo#1", "--format", "json")
    assert "dist/more_itertools.zip" in artifacts.stdout, artifacts.stdout + artifacts.stderr
    assert containers_of_home(project.home) == set()
    assert networks_of(project.home) == []


def test_gitlab_project_six_allowed_failure_and_service(project: Project) -> None:
    import_project(project, "six")
    out = project.run(timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr  # style may fail
    report = project.report("repo", 1)
    by_name = jobs(report)
    statuses = {name: job["status"] for name, job in by_name.items()}
    assert statuses == {
        "lint": "SUCCESS",
        "test: [plain]": "SUCCESS",
        "test: [optimized]": "SUCCESS",
        "style": "FAILED",
        "network": "SUCCESS",
        "build": "SUCCESS",
    }
    assert by_name["style"]["allow_failure"] is True
    assert "FAILED (allowed)" in out.stdout
    assert by_name["test: [plain]"]["tests"]["total"] > 100
    # the service answered by its alias (the job fetched a file the service serves)
    assert any(
        line.endswith("served=root:x:0:0:root:/root:/bin/sh") for line in out.job_lines("network")
    ), out.stdout
    assert containers_of_home(project.home) == set()
    assert networks_of(project.home) == []
