"""``cicd retry`` through the entry point with real containers (issue 11, item 1).

One of three parallel jobs fails; the retry runs only it and the job that needs all three,
carries the other two over as REUSED (their artifacts reach the dependent, their logs are the
first run's), and gives the re-run jobs the run's --env values plus the retry's.
"""

from __future__ import annotations

import pytest
from e2ekit import BUSYBOX, Project, git, jobs

pytestmark = pytest.mark.docker

THREE = f"""
stages: [build, use]
default:
  image: {BUSYBOX}
a:
  stage: build
  script: ["echo from-a-$COLOUR > a.txt"]
  artifacts: {{paths: [a.txt]}}
b:
  stage: build
  script: ["echo from-b > b.txt", "echo 'B_SAYS=hello' > b.env"]
  artifacts: {{paths: [b.txt], reports: {{dotenv: b.env}}}}
c:
  stage: build
  script: ['test "$FIXED" = 1', "echo from-c-$COLOUR > c.txt"]
  artifacts: {{paths: [c.txt]}}
d:
  stage: use
  needs: [a, b, c]
  script: ["cat a.txt b.txt c.txt", "echo b-says-$B_SAYS"]
"""

NATIVE = f"""
pipeline: {{name: tri, stages: [one, two], image: {BUSYBOX}}}
jobs:
  - {{name: a, stage: one, script: ["echo from-a > a.txt"], artifacts: [a.txt]}}
  - {{name: b, stage: one, script: ["sleep 1", 'test "$FIXED" = 1', "echo from-b > b.txt"],
      artifacts: [b.txt]}}
  - {{name: c, stage: two, script: ["cat a.txt b.txt"]}}
"""


def test_retry_runs_the_failed_job_and_its_dependent_and_reuses_the_others(
    project: Project,
) -> None:
    project.commit({".gitlab-ci.yml": THREE})
    first = project.run("--env", "COLOUR=red")
    assert first.returncode == 1, first.stdout + first.stderr
    before = jobs(project.report("repo", 1))
    assert {n: j["status"] for n, j in before.items()} == {
        "a": "SUCCESS", "b": "SUCCESS", "c": "FAILED", "d": "SKIPPED",
    }  # fmt: skip

    retried = project.cicd("retry", "repo#1", "--env", "FIXED=1")

    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert "Traceback" not in retried.stdout + retried.stderr
    assert "retry of repo#1: runs c, d again; reuses a, b" in retried.stderr
    assert retried.lines[0].startswith("repo#2 ")
    report = project.report("repo", 2)
    assert report["retry_of"] == 1 and report["status"] == "SUCCESS"
    after = jobs(report)
    assert {n: j["status"] for n, j in after.items()} == {
        "a": "REUSED", "b": "REUSED", "c": "SUCCESS", "d": "SUCCESS",
    }  # fmt: skip
    assert after["a"]["reused_from"] == 1 and after["c"]["reused_from"] is None
    assert after["a"]["started_at"] is None  # it did not run in repo#2
    # only c and d ran: no live line of a or b but their REUSED status
    assert retried.job_lines("a") == ["REUSED"]
    # a's artifact (made with the first run's COLOUR) and b's dotenv reached d; c, re-run,
    # saw the first run's --env value and the retry's
    assert "\nfrom-a-red\nfrom-b\nfrom-c-red\n" in "\n".join(retried.job_lines("d"))
    assert "b-says-hello" in retried.job_lines("d")
    # the reused job's log is the first run's; its artifacts are listed under the new run
    log = project.cicd("logs", "repo#2", "--job", "a")
    assert log.returncode == 0 and "echo from-a-$COLOUR > a.txt" in log.stdout
    listed = project.cicd("artifacts", "repo#2", "--job", "a", "--format", "json")
    assert '"a.txt"' in listed.stdout, listed.stdout + listed.stderr
    dest = project.repo.parent / "downloaded"
    download = project.cicd("artifacts", "repo#2", "--job", "a", "--download", str(dest))
    assert download.returncode == 0, download.stdout + download.stderr
    assert (dest / "a" / "a.txt").read_text() == "from-a-red\n"

    again = project.cicd("retry", "repo#2")
    assert again.returncode == 2
    assert again.stderr.strip() == (
        "error: cannot retry repo#2: nothing to retry: every job of repo#2 succeeded "
        "(retry one with --job NAME)"
    )


def test_retry_job_reruns_it_and_what_waits_for_it_from_a_reused_run(project: Project) -> None:
    project.commit({".gitlab-ci.yml": THREE})
    assert project.run("--env", "FIXED=1").returncode == 0

    out = project.cicd("retry", "repo#1", "--job", "b")

    assert out.returncode == 0, out.stdout + out.stderr
    after = jobs(project.report("repo", 2))
    assert {n: j["status"] for n, j in after.items()} == {
        "a": "REUSED", "b": "SUCCESS", "c": "REUSED", "d": "SUCCESS",
    }  # fmt: skip
    # a retry of the retry carries a over from the run that really ran it
    out = project.cicd("retry", "repo#2", "--job", "d")
    assert out.returncode == 0, out.stdout + out.stderr
    third = jobs(project.report("repo", 3))
    assert third["a"]["reused_from"] == 1 and third["b"]["reused_from"] == 2
    assert "\nfrom-a-\nfrom-b\nfrom-c-\n" in "\n".join(out.job_lines("d"))


def test_retry_of_a_native_run_restores_artifacts_into_the_shared_checkout(
    project: Project,
) -> None:
    project.commit({".pipelines/pipeline.yaml": NATIVE})
    assert project.run().returncode == 1

    out = project.cicd("retry", "tri#1", "--env", "FIXED=1")

    assert out.returncode == 0, out.stdout + out.stderr
    assert {n: j["status"] for n, j in jobs(project.report("tri", 2)).items()} == {
        "a": "REUSED", "b": "SUCCESS", "c": "SUCCESS",
    }
    assert "\nfrom-a\nfrom-b\n" in "\n".join(out.job_lines("c"))
    assert project.workspaces() == []


def test_retry_when_the_commit_is_gone_is_refused_in_one_line(project: Project) -> None:
    project.commit({".gitlab-ci.yml": THREE})
    assert project.run().returncode == 1
    # rewrite history so the run's commit no longer exists anywhere
    git(project.repo, "commit", "-q", "--amend", "-m", "rewritten")
    git(project.repo, "reflog", "expire", "--expire=now", "--all")
    git(project.repo, "gc", "-q", "--prune=now")

    out = project.cicd("retry", "repo#1", "--env", "FIXED=1")

    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.startswith("error: cannot retry repo#1: "), out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert project.cicd("report", "-p", "repo", "--run", "2").returncode != 0  # nothing recorded


def test_retry_of_an_unknown_run_is_refused_in_one_line(project: Project) -> None:
    project.commit({".gitlab-ci.yml": THREE})

    out = project.cicd("retry", "nope#1")

    assert out.returncode == 1 and out.stderr.strip() == "error: no run 'nope#1'"


def test_retry_hostile_job_name_never_reaches_the_terminal_raw(project: Project) -> None:
    project.commit({".gitlab-ci.yml": THREE})
    assert project.run().returncode == 1

    out = project.cicd("retry", "repo#1", "--job", "\x1b]0;pwned\x07\x1b[2J../../etc")

    assert out.returncode == 2, out.stdout + out.stderr
    assert "\x1b" not in out.stderr and "\x07" not in out.stderr
    assert out.stderr.startswith("error: cannot retry repo#1: --job ")
    assert "no such job runs in repo#1" in out.stderr
    assert project.cicd("report", "-p", "repo", "--run", "2").returncode != 0  # nothing recorded
