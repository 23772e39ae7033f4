"""The critical path of a real run (issue 11, item 3): a known DAG with known sleeps, through
``cicd run`` and ``cicd report NAME#N --graph`` / ``--format svg`` with real containers."""

from __future__ import annotations

import json
import textwrap

import pytest
from defusedxml import ElementTree
from e2ekit import BUSYBOX, Project

pytestmark = pytest.mark.docker

# b (3 s) is the longer of a's two followers: the run's wall time is a, then b, then d
DAG = f"""
pipeline: {{name: dag, stages: [build, test], image: {BUSYBOX}}}
jobs:
  - {{name: a, stage: build, script: "sleep 1"}}
  - {{name: b, stage: build, needs: [a], script: "sleep 3"}}
  - {{name: c, stage: build, needs: [a], script: "sleep 0.5"}}
  - {{name: d, stage: build, needs: [b, c], script: "true"}}
  - {{name: e, stage: test, script: "true"}}
"""


def test_critical_path_of_a_known_dag_is_a_b_d_e(project: Project) -> None:
    project.commit({".pipelines/pipeline.yaml": textwrap.dedent(DAG).lstrip("\n")})
    out = project.run()
    assert out.returncode == 0, out.stdout + out.stderr

    graph = project.cicd("report", "dag#1", "--graph")
    assert (graph.returncode, graph.stderr) == (0, "")
    assert "critical path: a -> b -> d -> e" in graph.stdout.splitlines()

    data = json.loads(project.cicd("report", "dag#1", "--graph", "--format", "json").stdout)
    assert data["critical_path"] == ["a", "b", "d", "e"]
    jobs = {job["name"]: job for stage in data["stages"] for job in stage["jobs"]}
    assert jobs["b"]["waited_for"] == jobs["c"]["waited_for"] == "a"
    assert jobs["d"]["waited_for"] == "b"  # c ended ~2.5 s before b
    assert jobs["e"]["waited_for"] == "d"
    assert jobs["b"]["end_seconds"] - jobs["b"]["start_seconds"] >= 3
    assert jobs["d"]["start_seconds"] >= jobs["b"]["end_seconds"]
    for name in "bcde":  # what a job waited for ended before it started, not long before
        assert 0 <= jobs[name]["wait_seconds"] < 3, jobs[name]

    svg = project.cicd("report", "dag#1", "--format", "svg")
    root = ElementTree.fromstring(svg.stdout.encode())
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "critical path: a -> b -> d -> e" in texts


# GitLab: b needs a in an earlier stage, so it starts once a ended, while slow still runs; c,
# without needs, waits for the whole build stage; d needs b
GITLAB = f"""
stages: [build, test, deploy]
default: {{image: {BUSYBOX}}}
a: {{stage: build, script: ["sleep 0.5"]}}
slow: {{stage: build, script: ["sleep 2"]}}
b: {{stage: test, needs: [a], script: ["sleep 3"]}}
c: {{stage: test, script: ["true"]}}
d: {{stage: deploy, needs: [b], script: ["true"]}}
"""


def test_critical_path_of_a_gitlab_file_follows_needs_across_stages(project: Project) -> None:
    project.commit({".gitlab-ci.yml": textwrap.dedent(GITLAB).lstrip("\n")})
    out = project.run()
    assert out.returncode == 0, out.stdout + out.stderr
    data = json.loads(project.cicd("report", "repo#1", "--graph", "--format", "json").stdout)
    assert data["critical_path"] == ["a", "b", "d"]
    jobs = {job["name"]: job for stage in data["stages"] for job in stage["jobs"]}
    assert jobs["b"]["waited_for"] == "a"  # not the build stage: slow still ran
    assert jobs["c"]["waited_for"] == "slow"
    assert jobs["d"]["waited_for"] == "b"
