"""``cicd run`` of a ``.gitlab-ci.yml`` with an ``after_script`` in ``default:``, end to end.

The after_script runs in a new shell of each job's container after its script, whatever happened,
with ``CI_JOB_STATUS``; its lines follow the script's in the live output and in ``cicd logs``,
a secret it prints is masked, and its failure never changes the job's status.
"""

from __future__ import annotations

import textwrap
import uuid

import pytest
from e2ekit import BUSYBOX, Project, jobs

pytestmark = pytest.mark.docker

SECRET = "tok-" + uuid.uuid4().hex
GITLAB_CI = f"""
stages: [build, test]
default:
  image: {BUSYBOX}
  before_script:
    - echo before
  after_script:
    - echo "after $CI_JOB_STATUS $TOKEN"
    - exit 4
compile:
  stage: build
  script:
    - echo "script $TOKEN"
broken:
  stage: test
  allow_failure: true
  script:
    - echo broken
    - exit 3
"""


@pytest.fixture
def project(project: Project) -> Project:
    """The session's project with GITLAB_CI committed as its only pipeline file."""
    project.commit({".gitlab-ci.yml": textwrap.dedent(GITLAB_CI).lstrip("\n")})
    project.env["TOKEN"] = SECRET
    return project


def test_gitlab_after_script_runs_after_script_in_order_with_job_status(project):
    out = project.run("-f", ".gitlab-ci.yml", "--secret", "TOKEN")

    assert out.returncode == 0, out.stdout + out.stderr
    assert SECRET not in out.stdout + out.stderr
    after_lines = [
        '$ echo "after $CI_JOB_STATUS $TOKEN"',
        "after {status} ****",
        "$ exit 4",
        "cicd: warning: after_script failed (exit code 4)",
    ]
    compile = [
        "$ echo before",
        "before",
        '$ echo "script $TOKEN"',
        "script ****",
        *[line.format(status="success") for line in after_lines],
    ]
    broken = [
        "$ echo before",
        "before",
        "$ echo broken",
        "broken",
        "$ exit 3",
        *[line.format(status="failed") for line in after_lines],
    ]
    assert out.job_lines("compile") == ["started (build)", *compile, "SUCCESS (exit code 0)"]
    assert out.job_lines("broken") == [
        "started (test)",
        *broken,
        "FAILED (exit code 3): allowed to fail",
    ]
    logs = project.cicd("logs", "repo#1", "--no-timestamps")
    assert logs.returncode == 0, logs.stderr
    assert SECRET not in logs.stdout
    assert logs.stdout.splitlines() == [
        *[f"compile | {line}" for line in compile],
        *[f"broken  | {line}" for line in broken],  # names padded to the longest
        "broken  | cicd: allowed to fail",
    ]
    report = jobs(project.report("repo", 1))
    assert (report["compile"]["status"], report["compile"]["exit_code"]) == ("SUCCESS", 0)
    assert (report["broken"]["status"], report["broken"]["exit_code"]) == ("FAILED", 3)
