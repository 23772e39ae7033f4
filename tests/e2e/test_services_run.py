"""``cicd run`` of a ``.gitlab-ci.yml`` with ``services:``, end to end through the console script.

A busybox ``httpd`` service is reachable from the job by its alias and by the name GitLab
derives from its image (``$VARIABLES`` in both names expanded), gets the job's variables, and is
gone with its network when the run ends: normally, on Ctrl-C, and after ``kill -9`` of ``cicd``
(the next command reaps them by label). A missing image with ``pull_policy: never`` fails the
job with one line.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest
from e2ekit import (
    BUSYBOX,
    Project,
    containers_of_home,
    jobs,
    remove_containers,
    sleeping_run,
)

pytestmark = pytest.mark.docker

HTTPD = (
    'mkdir -p /www && echo "$GREETING from $CI_JOB_NAME" > /www/index.html '
    "&& exec httpd -f -p 80 -h /www"
)
WAIT = "i=0; until wget -qO- http://web/ >/dev/null; do i=$((i+1)); [ $i -lt 50 ]; sleep 0.1; done"
GITLAB_CI = f"""
stages: [test]
web:
  stage: test
  image: $IMAGE
  variables:
    IMAGE: {BUSYBOX}
    GREETING: hello
  services:
    - name: ${{IMAGE}}
      alias: web
      entrypoint: [sh, -c]
      command: ['{HTTPD}']
  script:
    - '{WAIT}'
    - wget -qO- http://web/
    - wget -qO- http://cicd-busybox/
"""
SLEEPER = f"""
nap:
  image: {BUSYBOX}
  services:
    - name: {BUSYBOX}
      alias: web
      entrypoint: [sh, -c]
      command: ['exec httpd -f -p 80']
  script:
    - sleep 60
"""
NEVER = """
pulled:
  image: {name: cicd-test-missing:never, pull_policy: never}
  script: [echo never]
"""


def networks_of_home(home: Path) -> set[str]:
    """Ids of the networks of every run of ``home`` (labelled like its containers)."""
    prefix = hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:12] + "-"
    listed = subprocess.run(
        [
            "docker",
            "network",
            "ls",
            "-q",
            "--no-trunc",
            "--filter",
            "label=cicd.managed",
            "--format",
            '{{.ID}} {{.Label "cicd.run"}}',
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = (line.split(" ", 1) for line in listed.stdout.splitlines() if " " in line)
    return {nid for nid, run in rows if run.startswith(prefix)}


def remove_networks(ids: set[str]) -> None:
    """Remove networks this test left (after a failure)."""
    if ids:
        subprocess.run(["docker", "network", "rm", *sorted(ids)], capture_output=True, check=False)


def commit(project: Project, text: str) -> None:
    """Commit ``text`` as the project's ``.gitlab-ci.yml``."""
    project.commit({".gitlab-ci.yml": textwrap.dedent(text).lstrip("\n")})


def test_services_reachable_by_alias_and_derived_name_and_gone_after_run(project: Project):
    commit(project, GITLAB_CI)

    out = project.run("-f", ".gitlab-ci.yml")

    assert out.returncode == 0, out.stdout + out.stderr
    assert out.job_lines("web") == [
        "started (test)",
        f"$ {WAIT}",
        "$ wget -qO- http://web/",
        "hello from web",
        "$ wget -qO- http://cicd-busybox/",
        "hello from web",
        "SUCCESS (exit code 0)",
    ]
    assert jobs(project.report("repo", 1))["web"]["status"] == "SUCCESS"
    assert containers_of_home(project.home) == set()
    assert networks_of_home(project.home) == set()


def test_services_gone_after_ctrl_c(project: Project):
    commit(project, SLEEPER)
    try:
        with sleeping_run(project, "-f", ".gitlab-ci.yml") as run:
            assert len(run.containers) == 2  # the job's and its service's
            assert len(networks_of_home(project.home)) == 1
            run.proc.send_signal(signal.SIGINT)
            run.proc.communicate(timeout=60)
        assert run.proc.returncode != 0
        assert containers_of_home(project.home) == set()
        assert networks_of_home(project.home) == set()
    finally:
        remove_containers(containers_of_home(project.home))
        remove_networks(networks_of_home(project.home))


def test_services_killed_cicd_leaves_them_for_next_command_to_reap(project: Project):
    commit(project, SLEEPER)
    try:
        with sleeping_run(project, "-f", ".gitlab-ci.yml") as run:
            run.proc.kill()  # SIGKILL: nothing of cicd runs after this
            run.proc.communicate(timeout=30)
            left = containers_of_home(project.home)
        assert len(left) == 2 and left == run.containers  # job and service outlived it
        assert len(networks_of_home(project.home)) == 1

        settled = project.cicd("report", "-p", "repo", "--run", "1", "--format", "json")

        assert settled.returncode == 0, settled.stderr
        assert containers_of_home(project.home) == set()
        assert networks_of_home(project.home) == set()
    finally:
        remove_containers(containers_of_home(project.home))
        remove_networks(networks_of_home(project.home))


def test_services_pull_policy_never_missing_image_fails_job_with_one_line(project: Project):
    commit(project, NEVER)

    out = project.run("-f", ".gitlab-ci.yml")

    assert out.returncode == 1, out.stdout + out.stderr
    error = "image 'cicd-test-missing:never' not found locally (pull policy 'never')"
    job = jobs(project.report("repo", 1))["pulled"]
    assert (job["status"], job["error"]) == ("FAILED", error)
    assert "Traceback" not in out.stdout + out.stderr
