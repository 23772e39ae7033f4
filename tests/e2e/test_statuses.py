"""SKIPPED, MANUAL and ``FAILED (allowed)`` in ``cicd run``'s output, ``cicd report`` and its
JSON, and native ``pipeline: {fail_fast: false}``, end to end with real containers
(issue 10, items 4 and 8).
"""

from __future__ import annotations

import re
import textwrap

import pytest
from e2ekit import BUSYBOX, Project, jobs, stages

pytestmark = pytest.mark.docker

GITLAB_CI = f"""
stages: [build, test, deploy]
default:
  image: {BUSYBOX}
broken:
  stage: build
  script: exit 3
flaky:
  stage: build
  allow_failure: true
  script: exit 1
unit:
  stage: test
  script: echo unit-ran
ship:
  stage: deploy
  when: manual
  script: echo shipped
"""

NATIVE = f"""\
pipeline: {{name: nff, image: {BUSYBOX}, fail_fast: false, stages: [build, test]}}
jobs:
  - {{name: bad, stage: build, script: ["sleep 0.5", "exit 2"]}}
  - {{name: slow, stage: build, script: ["sleep 3", "echo slow-finished"]}}
  - {{name: after-bad, stage: build, needs: [bad], script: "echo never"}}
  - {{name: unit, stage: test, script: "echo never"}}
"""


def _row(lines: list[str], job: str) -> list[str]:
    """The cells of the last table row of ``job`` (its name in the first cell)."""
    rows = [
        [cell.strip() for cell in re.split("[│┃]", line)]
        for line in lines
        if " | " not in line and ("│" in line or "┃" in line)
    ]
    found = [row for row in rows if row[0] == job]
    assert found, f"no row for {job}"
    return found[-1]


def test_statuses_gitlab_skipped_manual_and_allowed_in_run_report_and_json(
    project: Project,
) -> None:
    project.commit({".gitlab-ci.yml": textwrap.dedent(GITLAB_CI).lstrip("\n")})
    out = project.run("-f", ".gitlab-ci.yml")
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.job_lines("unit") == ["SKIPPED: broken failed"]
    assert out.job_lines("flaky")[-1] == "FAILED (exit code 1): allowed to fail"
    assert out.job_lines("ship") == []  # never started
    # the summary table: job, stage, status
    assert _row(out.lines, "broken")[1:3] == ["build", "FAILED"]
    assert _row(out.lines, "flaky")[1:3] == ["build", "FAILED (allowed)"]
    assert _row(out.lines, "unit")[1:3] == ["test", "SKIPPED"]
    assert _row(out.lines, "ship")[1:3] == ["deploy", "MANUAL"]

    report = project.report("repo", 1)
    assert report["status"] == "FAILED"
    assert {name: s["status"] for name, s in stages(report).items()} == {
        "build": "FAILED",
        "test": "SKIPPED",
        "deploy": "SKIPPED",
    }
    found = {
        name: (job["status"], job["allow_failure"], job["allowed"], job["error"])
        for name, job in jobs(report).items()
    }
    assert found == {
        "broken": ("FAILED", False, False, None),
        "flaky": ("FAILED", True, True, "allowed to fail"),
        "unit": ("SKIPPED", False, False, "skipped: broken failed"),
        "ship": ("MANUAL", True, False, None),  # GitLab: manual jobs may fail by default
    }

    text = project.cicd("report", "-p", "repo", "--run", "1")
    assert text.returncode == 0, text.stderr
    assert _row(text.lines, "flaky")[1] == "FAILED (allowed)"
    assert _row(text.lines, "unit")[1] == "SKIPPED"
    assert _row(text.lines, "ship")[1] == "MANUAL"
    assert _row(text.lines, "deploy")[1] == "SKIPPED"
    job = project.cicd("report", "-p", "repo", "--run", "1", "--job", "unit")
    assert ["error", "skipped:", "broken", "failed"] in [line.split() for line in job.lines]

    manual = project.run("-f", ".gitlab-ci.yml", "--manual", "ship", "--job", "ship")
    assert manual.returncode == 0, manual.stdout + manual.stderr
    assert jobs(project.report("repo", 2))["ship"]["status"] == "SUCCESS"


def test_statuses_gitlab_run_of_only_skipped_jobs_is_skipped_and_exits_0(
    project: Project,
) -> None:
    project.commit(
        {
            ".gitlab-ci.yml": f"triage:\n  image: {BUSYBOX}\n  when: on_failure\n"
            "  script: echo triage\n"
        }
    )
    out = project.run("-f", ".gitlab-ci.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.job_lines("triage") == ["SKIPPED: when: on_failure and nothing failed before it"]
    assert out.lines[-1].split()[:2] == ["repo#1", "SKIPPED"]
    report = project.report("repo", 1)
    assert (report["status"], stages(report)["test"]["status"]) == ("SKIPPED", "SKIPPED")


def test_statuses_native_fail_fast_false_lets_sibling_finish_and_skips(
    project: Project,
) -> None:
    project.commit({".pipelines/nff.yaml": NATIVE})
    out = project.run("-p", "nff")
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.job_lines("bad")[-1] == "FAILED (exit code 2)"
    assert out.job_lines("slow")[-2:] == ["slow-finished", "SUCCESS (exit code 0)"]
    assert out.job_lines("after-bad") == ["SKIPPED: bad failed"]
    assert out.job_lines("unit") == ["SKIPPED: bad failed"]
    report = project.report("nff", 1)
    assert {name: job["status"] for name, job in jobs(report).items()} == {
        "bad": "FAILED",
        "slow": "SUCCESS",
        "after-bad": "SKIPPED",
        "unit": "SKIPPED",
    }
    assert {name: s["status"] for name, s in stages(report).items()} == {
        "build": "FAILED",
        "test": "SKIPPED",
    }


def test_statuses_native_fail_fast_not_a_boolean_is_one_positioned_line(
    project: Project,
) -> None:
    project.commit({".pipelines/bad.yaml": NATIVE.replace("fail_fast: false", "fail_fast: no")})
    out = project.cicd("check", "-p", "nff")
    assert out.returncode == 1
    assert out.stderr == (
        ".pipelines/bad.yaml:1:62: pipeline: 'fail_fast' must be true or false, not 'no'\n"
    )
