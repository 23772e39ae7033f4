"""``cicd run`` of a ``.gitlab-ci.yml``, end to end: real git repository, real containers.

Three stages, a ``default:`` before_script run in the job's shell, a job whose rules exclude it,
a cross-stage ``needs``, and ``--job`` selections.
"""

from __future__ import annotations

import textwrap

import pytest
from e2ekit import BUSYBOX, Project, jobs, stages

pytestmark = pytest.mark.docker

GITLAB_CI = f"""
stages: [build, test, deploy]
default:
  image: {BUSYBOX}
  before_script:
    - export GREETING=from-before-script
variables:
  WHERE: file
compile:
  stage: build
  script:
    - echo "compile $GREETING $WHERE"
    - echo built > built.txt
unit:
  stage: test
  needs: [compile]
  script:
    - echo "unit $GREETING $(cat built.txt)"
docs:
  stage: test
  script: echo docs
  rules:
    - if: $CI_COMMIT_BRANCH == "release"
ship:
  stage: deploy
  script: echo "ship $WHERE"
"""


@pytest.fixture
def project(project: Project) -> Project:
    """The session's project with GITLAB_CI committed as its only pipeline file."""
    project.commit({".gitlab-ci.yml": textwrap.dedent(GITLAB_CI).lstrip("\n")})
    return project


def test_gitlab_run_three_stages_with_before_script_and_a_rule_excluded_job(project):
    out = project.run("-f", ".gitlab-ci.yml", "--env", "WHERE=cli")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.lines[0].startswith("repo#1")  # named after the repository's folder
    assert "compile from-before-script cli" in out.job_lines("compile")
    assert "unit from-before-script built" in out.job_lines("unit")
    assert "ship cli" in out.job_lines("ship")
    assert out.job_lines("docs") == []
    assert "not run: docs (rules: no rule matches branch 'main')" in out.stderr
    report = project.report("repo", 1)
    assert report["status"] == "SUCCESS"
    assert {name: stage["status"] for name, stage in stages(report).items()} == {
        "build": "SUCCESS",
        "test": "SUCCESS",
        "deploy": "SUCCESS",
    }
    assert sorted(jobs(report)) == ["compile", "ship", "unit"]  # docs is no job of the run


def test_gitlab_run_selected_job_only(project):
    out = project.run("--job", "ship", "-p", "shop")  # found without -f: no .pipelines/
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.lines[0].startswith("shop#1")
    assert "ship file" in out.job_lines("ship")
    report = project.report("shop", 1)
    assert (report["status"], sorted(jobs(report))) == ("SUCCESS", ["ship"])
    assert [stage["name"] for stage in report["stages"]] == ["deploy"]


def test_gitlab_run_through_the_daemon_keeps_the_selection(project):
    project.env["CICD_DAEMON"] = "1"  # the daemon reads the committed file again itself
    try:
        out = project.run("--job", "unit", "--env", "WHERE=cli")
    finally:
        project.cicd("shutdown")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "unit from-before-script " in out.job_lines("unit")  # compile did not run first
    report = project.report("repo", 1)
    assert (report["status"], sorted(jobs(report))) == ("SUCCESS", ["unit"])
