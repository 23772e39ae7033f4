"""``cicd run`` of a ``.gitlab-ci.yml`` that fails, end to end with real containers.

GitLab's failure semantics (issue 10, item 4): no fail-fast, so a sibling of the failing job
finishes; the next stage's ordinary job is SKIPPED (error "skipped: ..."), its
``when: on_failure`` job runs, and a ``when: always`` job of the last stage runs too;
``retry: when`` retries only the listed reasons and ``allow_failure: exit_codes`` allows only
the listed codes.
"""

from __future__ import annotations

import textwrap

import pytest
from e2ekit import BUSYBOX, Project, jobs, stages, when

pytestmark = pytest.mark.docker

GITLAB_CI = f"""
stages: [build, test, deploy]
default:
  image: {BUSYBOX}
broken:
  stage: build
  script:
    - sleep 0.5
    - exit 3
sibling:
  stage: build
  script:
    - sleep 3
    - echo sibling-finished
unit:
  stage: test
  script: echo unit-ran
triage:
  stage: test
  when: on_failure
  script: echo triage-ran
cleanup:
  stage: deploy
  when: always
  script: echo cleanup-ran
"""


@pytest.fixture
def project(project: Project) -> Project:
    """The session's project with GITLAB_CI committed as its only pipeline file."""
    project.commit({".gitlab-ci.yml": textwrap.dedent(GITLAB_CI).lstrip("\n")})
    return project


def test_gitlab_run_failure_skips_later_jobs_but_runs_sibling_on_failure_and_always(
    project: Project,
) -> None:
    # tests/conftest.py's _no_container_left checks that every container of the run is gone
    out = project.run("-f", ".gitlab-ci.yml")
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.job_lines("broken")[-1] == "FAILED (exit code 3)"
    assert out.job_lines("sibling")[-2:] == ["sibling-finished", "SUCCESS (exit code 0)"]
    assert out.job_lines("unit") == ["SKIPPED: broken failed"]
    assert out.job_lines("triage")[-2:] == ["triage-ran", "SUCCESS (exit code 0)"]
    assert out.job_lines("cleanup")[-2:] == ["cleanup-ran", "SUCCESS (exit code 0)"]

    report = project.report("repo", 1)
    assert report["status"] == "FAILED"
    assert {name: stage["status"] for name, stage in stages(report).items()} == {
        "build": "FAILED",
        "test": "SUCCESS",
        "deploy": "SUCCESS",
    }
    found = jobs(report)
    assert {name: (job["status"], job["exit_code"]) for name, job in found.items()} == {
        "broken": ("FAILED", 3),
        "sibling": ("SUCCESS", 0),
        "unit": ("SKIPPED", None),
        "triage": ("SUCCESS", 0),
        "cleanup": ("SUCCESS", 0),
    }
    # the sibling went on after the failure instead of being killed by it
    assert when(found["broken"]["finished_at"]) < when(found["sibling"]["finished_at"])
    assert found["unit"]["started_at"] is None


RETRIES_CI = f"""
default:
  image: {BUSYBOX}
oom:
  allow_failure:
    exit_codes: [137]
  script: exit 137
flaky:
  retry:
    max: 2
    when: [script_failure]
  script: exit 4
slow:
  timeout: 2 seconds
  retry:
    max: 2
    when: script_failure
  script: sleep 30
"""


def test_gitlab_run_retry_when_and_allow_failure_exit_codes(project: Project) -> None:
    project.commit({".gitlab-ci.yml": textwrap.dedent(RETRIES_CI).lstrip("\n")})
    out = project.run("-f", ".gitlab-ci.yml", "-p", "retries")
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.job_lines("oom")[-1] == "FAILED (exit code 137): allowed to fail"
    flaky = [line for line in out.job_lines("flaky") if line.startswith("cicd:")]
    assert flaky == [
        "cicd: attempt 1 failed (exit code 4); retrying (1/2)",
        "cicd: attempt 2 failed (exit code 4); retrying (2/2)",
    ]
    assert out.job_lines("flaky")[-1] == "FAILED (exit code 4)"
    slow = [line for line in out.job_lines("slow") if line.startswith("cicd:")]
    assert slow == ["cicd: not retried: job_execution_timeout is not in retry:when"]
    assert out.job_lines("slow")[-1] == "FAILED: timed out after 2s"
    assert out.job_lines("slow").count("$ sleep 30") == 1  # one attempt only

    report = project.report("retries", 1)
    assert report["status"] == "FAILED"
    assert {name: (job["status"], job["exit_code"]) for name, job in jobs(report).items()} == {
        "oom": ("FAILED", 137),
        "flaky": ("FAILED", 4),
        "slow": ("FAILED", None),
    }
