"""Resources and tests per job through ``cicd`` with real containers (issue 11, items 4 and 5).

A job that holds ~120 MiB shows a peak above 100 MiB; with ``resources: {memory: 64m}`` the
kernel kills it and the job fails saying so; ``cpus`` caps its CPU time; a real pytest run in
the local Python image is summarised with the right counts; and a test that fails one run in
three on the same commit is listed by ``cicd report --flaky``.
"""

from __future__ import annotations

import json
import re
import textwrap

import pytest
from e2ekit import BUSYBOX, Project, jobs

pytestmark = pytest.mark.docker

MIB = 1024 * 1024
# tail keeps the last lines of its input: 120 MiB without a newline is one line it holds whole
# the container stays a second after its peak: a meter started late on a loaded machine still
# reads the cgroup's high-water mark before the container (and its cgroup) is gone
HOLD_120M = "head -c 120m /dev/zero | tail > /dev/null; sleep 1"


def memory_pipeline(resources: str = "") -> str:
    """Pipeline ``mem``: job ``hog`` holds 120 MiB, job ``small`` does nearly nothing.

    ``small`` lives half a second: a container whose script ends before the meter's first read
    takes its cgroup along and is reported unmeasured (None), which is not what this checks.
    """
    return textwrap.dedent(
        f"""\
        pipeline: {{name: mem, image: {BUSYBOX}}}
        jobs:
          - name: hog
            stage: build
            script: ["{HOLD_120M}"]
            {resources}
          - name: small
            stage: build
            script: ["echo small; sleep 0.5"]
        """
    )


def cells(lines: list[str]) -> dict[str, list[str]]:
    """The summary table's rows by job name."""
    rows = [
        [cell.strip() for cell in re.split("[│┃]", line)]
        for line in lines
        if " | " not in line and ("│" in line or "┃" in line)
    ]
    return {row[0]: row for row in rows}


def test_run_job_memory_peak_above_100mib(project: Project) -> None:
    project.commit({".pipelines/pipeline.yaml": memory_pipeline()})

    out = project.run()

    assert out.returncode == 0, out.stdout + out.stderr
    hog, small = jobs(project.report("mem", 1))["hog"], jobs(project.report("mem", 1))["small"]
    assert hog["memory_peak_bytes"] > 100 * MIB
    assert hog["cpu_seconds"] > 0
    assert small["memory_peak_bytes"] < 50 * MIB
    header = cells(out.lines)["job"]
    assert header[5:7] == ["memory", "cpu"]
    assert cells(out.lines)["hog"][5].endswith("MiB")
    details = project.cicd("report", "-p", "mem", "--run", "1", "--job", "hog")
    assert re.search(r"peak memory\s+1\d\d\.\d MiB", details.stdout), details.stdout


def test_run_memory_limit_oom_killed_fails_with_reason(project: Project) -> None:
    project.commit({".pipelines/pipeline.yaml": memory_pipeline("resources: {memory: 64m}")})

    out = project.run()

    assert out.returncode == 1, out.stdout + out.stderr
    reason = "out of memory (OOM killed): limit 64m"
    assert out.job_lines("hog")[-1] == f"FAILED (exit code 137): {reason}"
    hog = jobs(project.report("mem", 1))["hog"]
    assert (hog["status"], hog["exit_code"], hog["error"]) == ("FAILED", 137, reason)
    assert hog["memory_peak_bytes"] <= 64 * MIB
    log = project.cicd("logs", "mem#1", "--job", "hog")
    assert log.stdout.splitlines()[-1].endswith(f"cicd: {reason}"), log.stdout


def test_run_cpus_limit_caps_cpu_time(project: Project) -> None:
    spin = "end=$(($(date +%s) + 3)); while [ $(date +%s) -lt $end ]; do :; done"
    project.commit(
        {
            ".pipelines/pipeline.yaml": textwrap.dedent(
                f"""\
                pipeline: {{name: cpu, image: {BUSYBOX}}}
                jobs:
                  - name: spin
                    stage: build
                    script: ['{spin}']
                    resources: {{cpus: 0.25}}
                """
            )
        }
    )

    out = project.run()

    assert out.returncode == 0, out.stdout + out.stderr
    spin_job = jobs(project.report("cpu", 1))["spin"]
    assert 0 < spin_job["cpu_seconds"] <= 0.25 * 4 + 0.3  # at most a quarter of its ~3-4 s


PYTEST_FILE = """\
import os
import pytest

@pytest.fixture
def broken():
    raise RuntimeError("fixture broke")

def test_passes():
    assert True

def test_fails():
    assert 1 == 2

def test_errors(broken):
    pass

@pytest.mark.skip(reason="not today")
def test_skipped():
    pass

def test_maybe():
    assert os.environ.get("OUTCOME", "pass") == "pass"
"""


def pytest_pipeline(image: str) -> str:
    """Pipeline ``py``: job ``unit`` runs pytest in the local Python image, JUnit kept."""
    return textwrap.dedent(
        f"""\
        pipeline: {{name: py, image: {image}}}
        jobs:
          - name: unit
            stage: test
            allow_failure: true
            script: ["python3 -m pytest -q -p no:cacheprovider --junitxml=report.xml tests"]
            artifacts:
              reports:
                junit: report.xml
        """
    )


def test_run_real_pytest_junit_summarised(project: Project, python_image: str) -> None:
    project.commit(
        {".pipelines/pipeline.yaml": pytest_pipeline(python_image), "tests/test_a.py": PYTEST_FILE}
    )

    out = project.run()

    assert out.returncode == 0, out.stdout + out.stderr
    unit = jobs(project.report("py", 1))["unit"]
    assert unit["status"] == "FAILED" and unit["allowed"]
    assert unit["junit"] == {
        "tests": 5,
        "passed": 2,
        "failed": 1,
        "errors": 1,
        "skipped": 1,
        "failed_names": ["tests.test_a.test_fails", "tests.test_a.test_errors"],
    }
    assert unit["tests"]["total"] == 5


def test_report_flaky_over_three_runs_same_commit(project: Project, python_image: str) -> None:
    commit = project.commit(
        {".pipelines/pipeline.yaml": pytest_pipeline(python_image), "tests/test_a.py": PYTEST_FILE}
    )

    for outcome in ("pass", "fail", "pass"):
        out = project.run("--env", f"OUTCOME={outcome}")
        assert out.returncode == 0, out.stdout + out.stderr

    found = project.cicd("report", "-p", "py", "--flaky", "--last", "50", "--format", "json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout) == {
        "pipeline": "py",
        "last": 50,
        "runs": 3,
        "tests": [
            {
                "job": "unit",
                "name": "tests.test_a.test_maybe",
                "passed": 2,
                "failed": 1,
                "flips": 2,
                "same_commit": [commit],
                "last_run": 3,
                "last_outcome": "passed",
            }
        ],
    }
    text = project.cicd("report", "-p", "py", "--flaky")
    assert "py: flaky tests over the last 3 runs" in text.stdout
    assert "tests.test_a.test_maybe" in text.stdout
