"""The native format's ``resources: {cpus, memory}``, and ``reports: junit`` without ``paths``."""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from backend.pipeline import Pipeline
from backend.pipeline.gitlab.front import parse_gitlab
from backend.pipeline.model import Resources
from backend.pipeline.resources_keyword import memory_text, parse_memory
from backend.pipeline.schema import pipeline_schema

SCHEMA_FILE = Path(__file__).parents[2] / "docs" / "pipeline-format.schema.json"


def one_job(resources: str) -> str:
    return f"""
    pipeline: {{name: r}}
    jobs:
      - name: a
        stage: build
        script: [echo hi]
        resources: {resources}
    """


@pytest.mark.parametrize(
    ("written", "cpus", "memory", "shown"),
    [
        ("{cpus: 1.5, memory: 512m}", 1.5, 512 * 2**20, "512m"),
        ("{cpus: 2}", 2.0, None, None),
        ("{memory: 1.5g}", None, int(1.5 * 2**30), "1.5g"),
        ("{memory: 256Mi}", None, 256 * 2**20, "256Mi"),
        ("{memory: 1GiB}", None, 2**30, "1GiB"),
        ("{memory: 67108864}", None, 64 * 2**20, "64m"),
        ("{cpus: 0.01, memory: 6m}", 0.01, 6 * 2**20, "6m"),
        ("{}", None, None, None),
    ],
)
def test_resources_valid_values(
    parse: Callable[..., Pipeline],
    written: str,
    cpus: float | None,
    memory: int | None,
    shown: str | None,
) -> None:
    job = parse(one_job(written)).job("a")

    assert job.resources == Resources(cpus=cpus, memory=memory, memory_text=shown)


def test_resources_default_no_limit(parse: Callable[..., Pipeline]) -> None:
    job = parse(
        """
        pipeline: {name: r}
        jobs: [{name: a, stage: build, script: [echo]}]
        """
    ).job("a")

    assert job.resources == Resources()


@pytest.mark.parametrize(
    ("written", "problem"),
    [
        (
            "{cpus: -1}",
            "ci.yaml:6:23: job 'a': 'resources:cpus' must be a number of CPUs from 0.01 to 1024, "
            "like 1.5, not -1",
        ),
        (
            "{cpus: 0}",
            "ci.yaml:6:23: job 'a': 'resources:cpus' must be a number of CPUs from 0.01 to 1024, "
            "like 1.5, not 0",
        ),
        (
            "{cpus: .nan}",
            "ci.yaml:6:23: job 'a': 'resources:cpus' must be a number of CPUs from 0.01 to 1024, "
            "like 1.5, not .nan",
        ),
        (
            "{cpus: true}",
            "ci.yaml:6:23: job 'a': 'resources:cpus' must be a number of CPUs from 0.01 to 1024, "
            "like 1.5, not true",
        ),
        (
            "{memory: lots}",
            "ci.yaml:6:25: job 'a': 'resources:memory' must be a size like 512m or 2g, not 'lots'",
        ),
        (
            "{memory: -64m}",
            "ci.yaml:6:25: job 'a': 'resources:memory' must be a size like 512m or 2g, not '-64m'",
        ),
        (
            "{memory: -5}",
            "ci.yaml:6:25: job 'a': 'resources:memory' must be a size like 512m or 2g "
            "(at least 6m, Docker's minimum), not -5",
        ),
        (
            "{memory: 1m}",
            "ci.yaml:6:25: job 'a': 'resources:memory' must be a size like 512m or 2g "
            "(at least 6m, Docker's minimum), not '1m'",
        ),
        (
            "{memory: 2048p}",
            "ci.yaml:6:25: job 'a': 'resources:memory' must be a size like 512m or 2g "
            "(at most 1p), not '2048p'",
        ),
        (
            "{memory: [1]}",
            "ci.yaml:6:25: job 'a': 'resources:memory' must be a size like 512m or 2g, not a list",
        ),
        (
            "{memroy: 64m}",
            "ci.yaml:6:17: unknown key 'memroy' in job 'a': 'resources' (allowed: cpus, memory) "
            "(did you mean 'memory'?)",
        ),
        (
            "512m",
            "ci.yaml:6:16: job 'a': 'resources' must be a mapping like {cpus: 1.5, memory: 512m}, "
            "not '512m'",
        ),
    ],
)
def test_resources_bad_value_positioned_error(
    problems: Callable[..., list[str]], written: str, problem: str
) -> None:
    assert problems(one_job(written)) == [problem]


def test_resources_every_problem_at_once(problems: Callable[..., list[str]]) -> None:
    assert problems(one_job("{cpus: -1, memory: lots, disk: 5}")) == [
        "ci.yaml:6:23: job 'a': 'resources:cpus' must be a number of CPUs from 0.01 to 1024, "
        "like 1.5, not -1",
        "ci.yaml:6:35: job 'a': 'resources:memory' must be a size like 512m or 2g, not 'lots'",
        "ci.yaml:6:41: unknown key 'disk' in job 'a': 'resources' (allowed: cpus, memory)",
    ]


@pytest.mark.parametrize(
    ("text", "size"),
    [("512m", 512 * 2**20), ("1G", 2**30), ("64 m", 64 * 2**20), ("100b", 100), ("7", 7)],
)
def test_parse_memory_sizes(text: str, size: int) -> None:
    assert parse_memory(text) == size


@pytest.mark.parametrize("text", ["lots", "", "m", "1e9", "1.2.3g", "1x", "-1m", "9" * 30])
def test_parse_memory_not_a_size(text: str) -> None:
    assert parse_memory(text) is None


def test_memory_text_shortest_unit() -> None:
    assert [memory_text(n) for n in (64 * 2**20, 1536 * 2**20, 1000, 2**40)] == [
        "64m", "1.5g", "1000b", "1t",
    ]  # fmt: skip


def test_schema_file_describes_resources() -> None:
    resources = pipeline_schema()["properties"]["jobs"]["items"]["properties"]["resources"]
    written = json.loads(SCHEMA_FILE.read_text())["properties"]["jobs"]["items"]["properties"]
    assert written["resources"] == resources
    memory = next(o for o in resources["properties"]["memory"]["oneOf"] if o["type"] == "string")
    pattern = re.compile(memory["pattern"])
    assert all(pattern.search(text) for text in ("512m", "1.5g", "256Mi", "1GiB", " 64 m"))
    assert not any(pattern.search(text) for text in ("lots", "-64m", "1e9"))


def test_reports_junit_without_paths_native(parse: Callable[..., Pipeline]) -> None:
    job = parse(
        """
        pipeline: {name: r}
        jobs:
          - name: unit
            stage: test
            script: [pytest]
            artifacts: {reports: {junit: report.xml}}
        """
    ).job("unit")

    assert (job.artifacts, job.artifacts_options.reports) == ([], {"junit": ["report.xml"]})


def test_reports_junit_without_paths_gitlab() -> None:
    text = textwrap.dedent(
        """\
        unit:
          script: [pytest]
          artifacts:
            reports:
              junit: [report.xml, "more/*.xml"]
        """
    )

    job = parse_gitlab(text, ".gitlab-ci.yml", name="p").job("unit")

    assert job.artifacts == []
    assert job.artifacts_options.reports == {"junit": ["report.xml", "more/*.xml"]}


def test_gitlab_kubernetes_variables_set_no_limit() -> None:
    text = "unit:\n  script: [echo]\n  variables: {KUBERNETES_MEMORY_LIMIT: 1Gi}\n"

    job = parse_gitlab(text, ".gitlab-ci.yml", name="p").job("unit")

    assert job.resources == Resources()
    assert job.variables["KUBERNETES_MEMORY_LIMIT"] == "1Gi"
