"""``cache:`` end to end: ``cicd run`` of a ``.gitlab-ci.yml`` twice, real containers.

GitLab files run each job in its own workspace (isolated), so a file a job finds can only
have come from the cache (nothing here is an artifact). ``cicd cache list|clear`` read and
change the same ``CICD_HOME/cache``.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest
from e2ekit import BUSYBOX, Project, jobs

pytestmark = pytest.mark.docker

GITLAB_CI = f"""
stages: [one, two]
default:
  image: {BUSYBOX}
writer:
  stage: one
  cache: {{key: shared, paths: [vendor/], policy: push}}
  script:
    - echo "writer saw $(cat vendor/x 2>/dev/null || echo nothing)"
    - mkdir -p vendor && echo "run$CI_PIPELINE_IID" > vendor/x
    - ln -s /etc/hostname vendor/leak
reader:
  stage: two
  cache: {{key: shared, paths: [vendor/], policy: pull}}
  script:
    - echo "reader saw $(cat vendor/x 2>/dev/null || echo nothing)"
    - echo "leak is a link to $(readlink vendor/leak)"
    - mkdir -p vendor && echo reader > vendor/x
both:
  stage: one
  cache:
    key: {{files: [deps.lock], prefix: pp}}
    paths: [dl/]
  script:
    - echo "both saw $(cat dl/y 2>/dev/null || echo nothing)"
    - mkdir -p dl && echo "run$CI_PIPELINE_IID" > dl/y
"""

SAME_KEY = f"""
stages: [one, two]
default:
  image: {BUSYBOX}
.fill: &fill
  stage: one
  cache: {{key: same, paths: [out/]}}
  script:
    - mkdir -p out
    - for i in $(seq 1 300); do echo "$CI_JOB_NAME" > out/f$i; done
    - sleep 1
a: *fill
b: *fill
check:
  stage: two
  cache: {{key: same, paths: [out/], policy: pull}}
  script:
    - test "$(ls out | wc -l)" -eq 300
    - echo "writers $(cat out/* | sort -u | tr '\\n' ' ')"
"""


def _caches(project: Project) -> list[dict[str, Any]]:
    out = project.cicd("cache", "list", "--format", "json")
    assert out.returncode == 0, out.stderr
    caches: list[dict[str, Any]] = json.loads(out.stdout)["caches"]
    return caches


def _run(project: Project, *args: str) -> Any:
    out = project.run("-f", ".gitlab-ci.yml", *args)
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def test_cache_second_run_restores_by_policy_and_key_files(project: Project) -> None:
    project.commit({".gitlab-ci.yml": textwrap.dedent(GITLAB_CI).lstrip("\n"), "deps.lock": "1"})
    first = _run(project)
    assert "writer saw nothing" in first.job_lines("writer")
    assert "reader saw run1" in first.job_lines("reader")  # pushed in stage one, pulled in two
    assert "both saw nothing" in first.job_lines("both")
    assert "cicd: Created cache shared (2 file(s), 5 bytes)" in first.job_lines("writer")
    assert "leak is a link to /etc/hostname" in first.job_lines("reader")  # a link, as written
    assert "cicd: Not downloading cache shared due to policy" in first.job_lines("writer")
    assert "cicd: Not uploading cache shared due to policy" in first.job_lines("reader")
    pp_key = next(k["key"] for k in _caches(project) if k["key"].startswith("pp-"))

    second = _run(project)
    assert "writer saw nothing" in second.job_lines("writer")  # push never restores
    assert "reader saw run2" in second.job_lines("reader")  # not "reader": pull never saves
    assert "both saw run1" in second.job_lines("both")
    assert second.job_lines("both")[1:4] == [
        "cicd: Restoring cache",
        f"cicd: Checking cache for {pp_key}...",
        f"cicd: Successfully extracted cache {pp_key} (1 file(s))",
    ]
    assert "cicd: Saving cache for successful job" in second.job_lines("both")
    caches = {c["key"]: c for c in _caches(project)}
    assert sorted(caches) == sorted([pp_key, "shared"])
    assert (caches["shared"]["pipeline"], caches["shared"]["job"]) == ("repo", "writer")
    assert caches["shared"]["run"] == "repo#2"
    assert caches["shared"]["last_used"] is not None

    project.commit({"deps.lock": "2"})  # key: files: a new lock file is a new key
    third = _run(project)
    assert "both saw nothing" in third.job_lines("both")
    assert len([c for c in _caches(project) if c["key"].startswith("pp-")]) == 2

    cleared = project.cicd("cache", "clear", "shared")
    assert (cleared.returncode, cleared.stdout) == (0, "removed 1 cache\n")
    fourth = _run(project, "--job", "reader")
    assert "reader saw nothing" in fourth.job_lines("reader")
    assert "cicd: no cache shared" in fourth.job_lines("reader")
    cleared = project.cicd("cache", "clear")
    assert (cleared.returncode, cleared.stdout) == (0, "removed 2 caches\n")
    assert project.cicd("cache", "list").stdout == "no caches\n"


def test_cache_two_jobs_one_key_at_once(project: Project) -> None:
    project.commit({".gitlab-ci.yml": textwrap.dedent(SAME_KEY).lstrip("\n")})
    out = _run(project)
    report = project.report("repo", 1)
    assert {name: job["status"] for name, job in jobs(report).items()} == {
        "a": "SUCCESS",
        "b": "SUCCESS",
        "check": "SUCCESS",
    }
    a_started = jobs(report)["a"]["started_at"]
    b_ended = jobs(report)["b"]["finished_at"]
    assert a_started < b_ended  # they overlapped
    for job in ("a", "b"):
        assert "cicd: Created cache same (300 file(s), 600 bytes)" in out.job_lines(job)
    writers = [line for line in out.job_lines("check") if line.startswith("writers ")]
    assert writers in (["writers a "], ["writers b "])  # one whole version, never a mix
    caches = _caches(project)
    assert [c["key"] for c in caches] == ["same"]
    assert caches[0]["job"] in ("a", "b")
    leftovers = [p.name for p in (project.home / "cache").iterdir() if p.name.startswith(".tmp")]
    assert leftovers == []


NATIVE = f"""
pipeline: {{name: native, image: {BUSYBOX}}}
jobs:
  - name: fill
    stage: build
    cache: {{key: "n-$CICD_BRANCH", paths: [deps/]}}
    script:
      - echo "fill saw $(cat deps/d 2>/dev/null || echo nothing)"
      - mkdir -p deps && echo "$CICD_RUN" > deps/d
"""


def test_cache_native_file_shared_workspace(project: Project) -> None:
    project.commit({".pipelines/native.yaml": textwrap.dedent(NATIVE).lstrip("\n")})
    first = project.run("-p", "native")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "fill saw nothing" in first.job_lines("fill")
    second = project.run("-p", "native")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "fill saw native#1" in second.job_lines("fill")  # a fresh checkout: from the cache
    assert "cicd: Successfully extracted cache n-main (1 file(s))" in second.job_lines("fill")
    assert [(c["key"], c["run"]) for c in _caches(project)] == [("n-main", "native#2")]
