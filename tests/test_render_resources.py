"""What people see of a job's resources and tests: the summary table, job details, test lines."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from rich.console import Console

from backend.schemas import JobRunPublic, JobTestsPublic, RunPublic, StageRunPublic, Status
from cicd_cli import render
from cicd_cli.render import cpu_text, job_details, memory_text, summary_table

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def job(name: str, **fields: object) -> JobRunPublic:
    base: dict[str, object] = {
        "name": name, "status": Status.SUCCESS, "allow_failure": False, "exit_code": 0,
        "image": "busybox", "started_at": T0, "finished_at": T0,
    }  # fmt: skip
    return JobRunPublic.model_validate(base | fields)


def run(*jobs: JobRunPublic) -> RunPublic:
    stage = StageRunPublic(
        name="build", status=Status.SUCCESS, started_at=T0, finished_at=T0, jobs=list(jobs)
    )
    return RunPublic(
        pipeline="p", run=1, status=Status.SUCCESS, commit="c", branch=None,
        started_at=T0, finished_at=T0, worker=None, stages=[stage],
    )  # fmt: skip


def shown(renderable: object) -> str:
    console = Console(width=200, markup=False, highlight=False, color_system=None)
    with console.capture() as captured:
        console.print(renderable)
    return captured.get()


def test_summary_table_memory_and_cpu_columns_when_measured() -> None:
    text = shown(
        summary_table(run(job("hog", memory_peak_bytes=126 * 2**20, cpu_seconds=75.5), job("x")))
    )

    rows = [[cell.strip() for cell in re.split("[│┃]", line)] for line in text.splitlines()]
    assert rows[1] == ["job", "stage", "status", "duration", "exit code", "memory", "cpu"]
    assert rows[3][0] == "hog" and rows[3][-2:] == ["126.0 MiB", "1m15s"]
    assert rows[4][0] == "x" and rows[4][-2:] == ["", ""]


def test_summary_table_no_usage_columns_when_nothing_measured() -> None:
    assert "memory" not in shown(summary_table(run(job("x"))))


def test_memory_and_cpu_text() -> None:
    assert (memory_text(None), memory_text(512), memory_text(3 * 2**30)) == ("", "512 B", "3.0 GiB")
    assert (cpu_text(None), cpu_text(1.234), cpu_text(125.0)) == ("", "1.23s", "2m05s")


def test_job_details_resources_and_needs() -> None:
    text = shown(
        job_details(
            job("hog", memory_peak_bytes=2**20, cpu_seconds=0.5, needs=["a", "b"]), T0
        )
    )

    fields = {line.split("  ")[0]: line.split("  ", 1)[1].strip() for line in text.splitlines()}
    assert fields["peak memory"] == "1.0 MiB"
    assert fields["cpu time"] == "0.50s"
    assert fields["needs"] == "a, b"


def test_tests_lines_counts_and_failed_names() -> None:
    tests = JobTestsPublic(
        total=130, failed=7, errors=1, skipped=2, time=1.0,
        failed_names=[f"t.test_{i}" for i in range(8)],
    )  # fmt: skip

    lines = [line.plain for line in render.tests_lines(run(job("unit", tests=tests), job("lint")))]

    assert lines == [
        "unit: 120 passed, 7 failed, 1 error, 2 skipped: "
        "t.test_0, t.test_1, t.test_2, t.test_3, t.test_4 and 3 more"
    ]


def test_tests_lines_hostile_name_loses_controls() -> None:
    tests = JobTestsPublic(
        total=1, failed=1, errors=0, skipped=0, time=0.0, failed_names=["t.\x1b[2Jboom"]
    )

    (line,) = render.tests_lines(run(job("unit", tests=tests)))

    assert "\x1b" not in line.plain and line.plain.startswith("unit: 0 passed, 1 failed: t.")


def test_run_table_memory_and_cpu_columns_before_tests() -> None:
    tests = JobTestsPublic(total=2, failed=0, errors=0, skipped=0, time=0.0)
    hog = job("hog", memory_peak_bytes=3 * 2**20, cpu_seconds=2.0, tests=tests)
    text = shown(render.run_table(run(hog), T0))

    rows = [[cell.strip() for cell in re.split("[│┃]", line)] for line in text.splitlines()]
    assert rows[0][-3:] == ["memory", "cpu", "tests"]
    assert rows[3][0] == "hog" and rows[3][-3:] == ["3.0 MiB", "2.00s", "2 tests"]
