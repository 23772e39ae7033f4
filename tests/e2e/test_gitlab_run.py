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
  artifacts:
    paths: [built.txt]  # each job has its own workspace: unit gets it as an artifact
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


PREDEFINED = f"""
image: {BUSYBOX}
variables:
  CI_PROJECT_NAME: overridden-by-the-file
probe:
  parallel: 2
  script:
    - echo "sha=$CI_COMMIT_SHA short=$CI_COMMIT_SHORT_SHA branch=$CI_COMMIT_BRANCH"
    - echo "job=$CI_JOB_NAME stage=$CI_JOB_STAGE node=$CI_NODE_INDEX/$CI_NODE_TOTAL"
    - echo "iid=$CI_PIPELINE_IID dir=$CI_PROJECT_DIR pwd=$(pwd) gitlab=$GITLAB_CI"
    - echo "project=$CI_PROJECT_NAME title=$CI_COMMIT_TITLE"
"""


def test_gitlab_run_jobs_get_predefined_variables(project):
    sha = project.commit({".gitlab-ci.yml": textwrap.dedent(PREDEFINED).lstrip("\n")})
    out = project.run("-f", ".gitlab-ci.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    for index in (1, 2):
        printed = [line for line in out.job_lines(f"probe {index}/2") if not line.startswith("$")]
        assert (printed[0], printed[-1]) == ("started (test)", "SUCCESS (exit code 0)")
        assert printed[1:-1] == [
            f"sha={sha} short={sha[:8]} branch=main",
            f"job=probe {index}/2 stage=test node={index}/2",
            "iid=1 dir=/workspace pwd=/workspace gitlab=true",
            "project=overridden-by-the-file title=e2e",  # file variables beat predefined
        ]
