"""Artifacts between jobs through ``cicd run`` with real containers (issue 10, item 2).

``artifacts:when`` keeps a failing job's files (``on_failure``, ``always``) and drops them
otherwise; ``exclude`` and ``**`` pick the files; a ``reports: dotenv`` file becomes variables
of the later jobs that receive the artifacts, unless ``needs: [{job, artifacts: false}]``; and
``cicd gc`` removes artifacts whose ``expire_in`` has passed, files and records.
"""

from __future__ import annotations

import json
import textwrap
import time

import pytest
from e2ekit import BUSYBOX, Project, jobs

pytestmark = pytest.mark.docker


def _commit_gitlab(project: Project, text: str) -> None:
    project.commit({".gitlab-ci.yml": textwrap.dedent(text).lstrip("\n")})


def _listed(project: Project, run: str = "repo#1") -> dict[str, list[str]]:
    """``cicd artifacts RUN --format json``: job -> its artifact paths."""
    out = project.cicd("artifacts", run, "--format", "json")
    assert out.returncode == 0, out.stderr
    found: dict[str, list[str]] = {}
    for item in json.loads(out.stdout)["artifacts"]:
        found.setdefault(item["job"], []).append(item["path"])
    return found


WHEN = f"""
stages: [build, test]
default:
  image: {BUSYBOX}
always:
  stage: build
  script:
    - mkdir -p log && echo always-log > log/always.txt
    - exit 4
  artifacts: {{when: always, paths: [log/always.txt]}}
onfail:
  stage: build
  script:
    - mkdir -p log && echo onfail-log > log/onfail.txt
    - exit 5
  artifacts: {{when: on_failure, paths: [log/onfail.txt]}}
onsuccess:
  stage: build
  script:
    - mkdir -p log && echo success-log > log/success.txt
    - exit 6
  artifacts: {{paths: [log/success.txt]}}
triage:
  stage: test
  when: on_failure
  script:
    - cat log/always.txt log/onfail.txt
    - ls log/success.txt 2>/dev/null || echo no-success-log
"""


def test_artifacts_when_keeps_failing_jobs_files_for_on_failure_and_always(
    project: Project,
) -> None:
    _commit_gitlab(project, WHEN)
    out = project.run("-f", ".gitlab-ci.yml")
    assert out.returncode == 1, out.stdout + out.stderr
    triage = out.job_lines("triage")
    assert "always-log" in triage and "onfail-log" in triage, triage
    assert "no-success-log" in triage, triage
    assert _listed(project) == {"always": ["log/always.txt"], "onfail": ["log/onfail.txt"]}
    assert jobs(project.report("repo", 1))["triage"]["status"] == "SUCCESS"


SELECT = f"""
stages: [build, test]
default:
  image: {BUSYBOX}
make:
  stage: build
  script:
    - mkdir -p out/a/b out/c
    - echo 1 > out/top.txt
    - echo 2 > out/a/b/deep.txt
    - echo 3 > out/c/keep.txt
    - echo 4 > out/c/drop.log
    - echo 5 > out/a/b/skip.tmp.txt
    - echo 6 > loose.bin
  artifacts:
    paths: ["out/**/*.txt", out/c/]
    exclude: ["**/*.tmp.txt", "out/c/*.log"]
use:
  stage: test
  script:
    - find out loose.bin -type f 2>/dev/null | sort
"""


def test_artifacts_exclude_and_globstar_pick_files_and_dependents_get_exactly_them(
    project: Project,
) -> None:
    _commit_gitlab(project, SELECT)
    out = project.run("-f", ".gitlab-ci.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    want = ["out/a/b/deep.txt", "out/c/keep.txt", "out/top.txt"]
    assert _listed(project) == {"make": want}
    listed = [line for line in out.job_lines("use") if line.startswith("out/")]
    assert listed == want, out.job_lines("use")


DOTENV = f"""
stages: [build, test]
default:
  image: {BUSYBOX}
variables:
  VERSION: from-yaml
  KEPT: from-yaml
build:
  stage: build
  script:
    - printf 'VERSION=1.2.3\\nBUILT_BY=build\\n# a comment\\nKEPT=from-dotenv\\n' > build.env
    - echo artifact > dist.txt
  artifacts:
    paths: [dist.txt]
    reports: {{dotenv: build.env}}
with_artifacts:
  stage: test
  needs: [build]
  script:
    - echo "version=$VERSION built_by=$BUILT_BY kept=$KEPT"
    - cat dist.txt
without_artifacts:
  stage: test
  needs: [{{job: build, artifacts: false}}]
  script:
    - echo "version=$VERSION built_by=${{BUILT_BY:-unset}}"
    - cat dist.txt 2>/dev/null || echo no-dist
"""


def test_artifacts_dotenv_reaches_later_job_and_needs_artifacts_false_gets_nothing(
    project: Project,
) -> None:
    _commit_gitlab(project, DOTENV)
    out = project.run("-f", ".gitlab-ci.yml", "--env", "KEPT=from-cli")
    assert out.returncode == 0, out.stdout + out.stderr
    # dotenv beats the file's variables, --env beats dotenv
    got = out.job_lines("with_artifacts")
    assert "version=1.2.3 built_by=build kept=from-cli" in got, got
    assert "artifact" in got, got
    without = out.job_lines("without_artifacts")
    assert "version=from-yaml built_by=unset" in without, without
    assert "no-dist" in without, without


def test_artifacts_dotenv_invalid_file_is_a_warning_and_hands_nothing(project: Project) -> None:
    _commit_gitlab(
        project,
        DOTENV.replace("'VERSION=1.2.3", "'bad-key=1\\nVERSION=1.2.3"),
    )
    out = project.run("-f", ".gitlab-ci.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert any(
        "dotenv report 'build.env' ignored: line 1 is not KEY=VALUE" in line
        for line in out.job_lines("build")
    ), out.job_lines("build")
    assert "version=from-yaml built_by= kept=from-yaml" in out.job_lines("with_artifacts")


EXPIRING = f"""
default:
  image: {BUSYBOX}
short:
  script: ["echo short > short.txt"]
  artifacts: {{paths: [short.txt], expire_in: 1 second, name: short-lived}}
forever:
  script: ["echo forever > forever.txt"]
  artifacts: {{paths: [forever.txt], expire_in: never}}
"""


def test_gc_removes_expired_artifacts_files_and_records_and_keeps_the_others(
    project: Project,
) -> None:
    _commit_gitlab(project, EXPIRING)
    out = project.run("-f", ".gitlab-ci.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert _listed(project) == {"forever": ["forever.txt"], "short": ["short.txt"]}
    stored = {p.name: p for p in (project.home / "artifacts").rglob("*.txt")}
    assert set(stored) == {"short.txt", "forever.txt"}
    time.sleep(1.5)

    gc = project.cicd("gc")
    assert gc.returncode == 0, gc.stdout + gc.stderr
    assert "removed 1 expired artifact file(s)" in gc.stdout, gc.stdout
    assert _listed(project) == {"forever": ["forever.txt"]}
    assert not stored["short.txt"].exists() and stored["forever.txt"].exists()
    again = project.cicd("gc")
    assert "removed 0 expired artifact file(s)" in again.stdout, again.stdout
