"""``cicd dry-run --format mermaid|dot``: the plan's jobs as nodes and exactly the needs edges."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from defusedxml import ElementTree

QUOTED = 'b "q" <x> #1 [y] {z} & `t`'
SLASHED = "c\\"
NATIVE = f"""\
pipeline: {{name: dag, stages: [build, test], image: busybox}}
jobs:
  - {{name: a, stage: build, script: "true"}}
  - name: '{QUOTED}'
    stage: build
    needs: [a]
    script: "true"
  - {{name: '{SLASHED}', stage: build, needs: [a], script: "true"}}
  - {{name: d, stage: build, needs: ['{QUOTED}', '{SLASHED}'], script: "true"}}
  - {{name: e, stage: test, script: "true"}}
"""
NODES = {"build": ["a", QUOTED, SLASHED, "d"], "test": ["e"]}
EDGES = {("a", QUOTED), ("a", SLASHED), (QUOTED, "d"), (SLASHED, "d")}
# a GitLab file: unit has no needs (it waits for the whole build stage): no edge is drawn for it
GITLAB = """\
stages: [build, test]
compile: {stage: build, script: ["true"]}
unit: {stage: test, script: ["true"]}
lint: {stage: test, needs: [compile], script: ["true"]}
"""


def cicd(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m cicd_cli ARGS`` in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "cicd_cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "120", "NO_COLOR": "1"},
    )


@pytest.fixture
def native(tmp_path: Path) -> Path:
    """A folder whose .pipelines/pipeline.yaml is ``NATIVE``."""
    (tmp_path / ".pipelines").mkdir()
    (tmp_path / ".pipelines" / "pipeline.yaml").write_text(NATIVE)
    return tmp_path


def _unmermaid(label: str) -> str:
    return re.sub(r"#(\d+);", lambda m: chr(int(m[1])), label)


def parse_mermaid(text: str) -> tuple[dict[str, list[str]], set[tuple[str, str]]]:
    """Stages with their job names, and edges by name, from our flowchart; every line known."""
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    stages: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    ids: list[tuple[str, str]] = []
    current: str | None = None
    for line in lines[1:]:
        if m := re.fullmatch(r'  subgraph s\d+\["([^"]*)"\]', line):
            current = _unmermaid(m[1])
            stages[current] = []
        elif m := re.fullmatch(r'    (n\d+)\["([^"]*)"\]', line):
            assert current is not None
            names[m[1]] = _unmermaid(m[2])
            stages[current].append(names[m[1]])
        elif line == "  end":
            current = None
        elif m := re.fullmatch(r"  (n\d+) --> (n\d+)", line):
            ids.append((m[1], m[2]))
        else:
            raise AssertionError(f"unexpected mermaid line: {line!r}")
    return stages, {(names[a], names[b]) for a, b in ids}


def _undot(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse_dot(text: str) -> tuple[dict[str, list[str]], set[tuple[str, str]]]:
    """Stages with their job names, and edges by name, from our digraph; every line known."""
    lines = text.splitlines()
    assert lines[:3] == ['digraph "dag" {', "  rankdir=LR;", "  node [shape=box];"]
    assert lines[-1] == "}"
    quoted = r'"((?:[^"\\]|\\.)*)"'
    stages: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    ids: list[tuple[str, str]] = []
    current: str | None = None
    for line in lines[3:-1]:
        if re.fullmatch(r"  subgraph cluster_\d+ \{", line):
            current = ""
        elif m := re.fullmatch(rf"    label={quoted};", line):
            current = _undot(m[1])
            stages[current] = []
        elif m := re.fullmatch(rf"    (n\d+) \[label={quoted}(, style=dashed)?\];", line):
            assert current
            names[m[1]] = _undot(m[2])
            stages[current].append(names[m[1]])
        elif line == "  }":
            current = None
        elif m := re.fullmatch(r"  (n\d+) -> (n\d+);", line):
            ids.append((m[1], m[2]))
        else:
            raise AssertionError(f"unexpected dot line: {line!r}")
    return stages, {(names[a], names[b]) for a, b in ids}


def test_dry_run_mermaid_nodes_and_exactly_the_needs_edges(native: Path) -> None:
    result = cicd("dry-run", "--format", "mermaid", cwd=native)
    assert (result.returncode, result.stderr) == (0, "")
    assert parse_mermaid(result.stdout) == (NODES, EDGES)
    assert 'n1["b #34;q#34; #60;x#62; #35;1 [y] {z} #38; #96;t#96;"]' in result.stdout


def test_dry_run_dot_nodes_and_exactly_the_needs_edges(native: Path) -> None:
    result = cicd("dry-run", "--format", "dot", cwd=native)
    assert (result.returncode, result.stderr) == (0, "")
    assert parse_dot(result.stdout) == (NODES, EDGES)
    assert '    n2 [label="c\\\\"];' in result.stdout.splitlines()


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz (dot) is not installed")
def test_dry_run_dot_is_read_by_graphviz(native: Path) -> None:
    result = cicd("dry-run", "--format", "dot", cwd=native)
    drawn = subprocess.run(
        ["dot", "-Tsvg"], input=result.stdout, capture_output=True, text=True, check=True
    )
    svg = ElementTree.fromstring(drawn.stdout)
    ns = {"s": "http://www.w3.org/2000/svg"}
    nodes, edges = {}, set()
    for group in svg.iterfind(".//s:g", ns):
        title = group.findtext("s:title", namespaces=ns)
        kind = group.get("class")
        if kind == "node":
            nodes[title] = group.findtext("s:text", namespaces=ns)
        elif kind == "edge":
            edges.add(tuple(title.split("->")))
    assert sorted(nodes.values()) == sorted(n for jobs in NODES.values() for n in jobs)
    assert {(nodes[a], nodes[b]) for a, b in edges} == EDGES


def test_dry_run_gitlab_job_without_needs_gets_no_edge(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path)], check=True)
    (tmp_path / ".gitlab-ci.yml").write_text(GITLAB)
    result = cicd("dry-run", "-p", "dag", "--format", "mermaid", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    stages, edges = parse_mermaid(result.stdout)
    assert stages == {"build": ["compile"], "test": ["unit", "lint"]}
    assert edges == {("compile", "lint")}
    dot = cicd("dry-run", "-p", "dag", "--format", "dot", cwd=tmp_path)
    assert parse_dot(dot.stdout)[1] == {("compile", "lint")}


def test_dry_run_graph_of_an_invalid_file_prints_its_problems(native: Path) -> None:
    (native / ".pipelines" / "pipeline.yaml").write_text(
        NATIVE.replace("needs: [a]", "needs: [zz]")
    )
    result = cicd("dry-run", "--format", "mermaid", cwd=native)
    assert (result.returncode, result.stdout) == (1, "")
    assert "zz" in result.stderr and "Traceback" not in result.stderr
