"""Per-job workspaces through ``cicd run`` with real containers (issue 10, item 1).

A ``.gitlab-ci.yml`` runs isolated: each job starts from a clean copy of the commit plus the
artifacts of the jobs it depends on; two jobs running side by side never see each other's
files, and a job that rewrites a committed file in place changes nobody else's copy. A native
file stays shared unless ``pipeline.workspace: isolated`` says otherwise.
"""

from __future__ import annotations

import textwrap

import pytest
from e2ekit import BUSYBOX, Project, jobs

pytestmark = pytest.mark.docker

ISOLATION = f"""
stages: [build, test]
default:
  image: {BUSYBOX}
left:
  stage: build
  script:
    - echo left > same.txt
    - echo rewritten-by-left > committed.txt
    - echo scratch > left-scratch.txt
    - sleep 2
    - echo "left sees $(cat same.txt)"
    - ls right-scratch.txt 2>/dev/null || echo "left sees no right-scratch"
  artifacts:
    paths: [same.txt]
right:
  stage: build
  script:
    - echo right > same.txt
    - echo scratch > right-scratch.txt
    - sleep 2
    - echo "right sees $(cat same.txt)"
    - ls left-scratch.txt 2>/dev/null || echo "right sees no left-scratch"
    - echo "right sees committed $(cat committed.txt)"
  artifacts:
    paths: [right.txt]
    untracked: false
after:
  stage: test
  dependencies: [left]
  script:
    - echo "after sees $(cat same.txt)"
    - echo "after sees committed $(cat committed.txt)"
    - ls left-scratch.txt right-scratch.txt 2>/dev/null || echo "after sees no scratch"
"""


def test_gitlab_workspace_parallel_jobs_isolated_and_later_job_sees_only_dependencies(
    project: Project,
) -> None:
    project.commit(
        {
            ".gitlab-ci.yml": textwrap.dedent(ISOLATION).lstrip("\n"),
            "committed.txt": "original\n",
        }
    )
    out = project.run("-f", ".gitlab-ci.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    left, right, after = (out.job_lines(n) for n in ("left", "right", "after"))
    # both wrote same.txt at the same time: each reads back its own
    assert "left sees left" in left and "left sees no right-scratch" in left, left
    assert "right sees right" in right and "right sees no left-scratch" in right, right
    # left rewrote a committed file in place: right's copy (and the checkout) kept the original
    assert "right sees committed original" in right, right
    # after depends on left only: left's artifact, the clean checkout, nobody's scratch files
    assert "after sees left" in after, after
    assert "after sees committed original" in after, after
    assert "after sees no scratch" in after, after
    assert any("restored 1 artifact file(s) of left" in line for line in after), after
    assert {n: j["status"] for n, j in jobs(project.report("repo", 1)).items()} == {
        "left": "SUCCESS",
        "right": "SUCCESS",
        "after": "SUCCESS",
    }


NATIVE = f"""
pipeline: {{name: native, image: {BUSYBOX}, stages: [one, two]{{mode}}}}
jobs:
  - name: write
    stage: one
    script: ["echo from-write > left.txt"]
  - name: read
    stage: two
    script: ["cat left.txt 2>/dev/null || echo nothing-left"]
"""


@pytest.mark.parametrize(
    ("mode", "seen"),
    [
        ("", "from-write"),
        (", workspace: shared", "from-write"),
        (", workspace: isolated", "nothing-left"),
    ],
)
def test_native_workspace_shared_by_default_isolated_on_request(
    project: Project, mode: str, seen: str
) -> None:
    project.commit({".pipelines/native.yaml": NATIVE.replace("{mode}", mode)})
    out = project.run("-p", "native")
    assert out.returncode == 0, out.stdout + out.stderr
    assert seen in out.job_lines("read"), out.job_lines("read")
