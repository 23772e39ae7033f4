"""How tests and the new statuses print: the summary table, ``cicd report``'s tables and the
live lines (``cicd_cli/render.py``), rendered to plain text.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console

from backend.recording import Event
from backend.schemas import JobRunPublic, JobTestsPublic, RunPublic, StageRunPublic, Status
from cicd_cli.render import (
    LivePrinter,
    job_details,
    job_tests_text,
    print_run_end,
    run_table,
    stage_table,
    summary_table,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _job(name: str, status: Status, **fields: Any) -> JobRunPublic:
    return JobRunPublic(
        name=name,
        status=status,
        allow_failure=fields.pop("allow_failure", False),
        exit_code=fields.pop("exit_code", None),
        image="img",
        started_at=T0,
        finished_at=T0 + timedelta(seconds=2),
        **fields,
    )


def _run(*jobs: JobRunPublic, status: Status = Status.FAILED) -> RunPublic:
    return RunPublic(
        pipeline="p",
        run=1,
        status=status,
        commit="c" * 40,
        branch=None,
        started_at=T0,
        finished_at=T0 + timedelta(seconds=3),
        worker=None,
        stages=[
            StageRunPublic(
                name="test", status=status, started_at=T0, finished_at=None, jobs=list(jobs)
            )
        ],
    )


def _text(renderable: Any) -> list[str]:
    console = Console(width=200, color_system=None, markup=False)
    with console.capture() as captured:
        console.print(renderable)
    plain = "".join(" " if "\u2500" <= ch <= "\u257f" else ch for ch in captured.get())
    return [" ".join(line.split()) for line in plain.splitlines() if line.strip()]


UNIT = JobTestsPublic(total=12, failed=1, errors=2, skipped=3, time=1.5, failed_names=["a.b"])
ONE = JobTestsPublic(total=1, failed=0, errors=0, skipped=0, time=0.0)


def test_job_tests_text_counts_and_singulars() -> None:
    assert str(job_tests_text(_job("u", Status.SUCCESS, tests=UNIT))) == (
        "12 tests, 1 failed, 2 errors, 3 skipped"
    )
    assert str(job_tests_text(_job("u", Status.SUCCESS, tests=ONE))) == "1 test"
    assert str(job_tests_text(_job("u", Status.SUCCESS))) == ""


def test_summary_table_tests_column_and_statuses() -> None:
    run = _run(
        _job("unit", Status.FAILED, exit_code=1, tests=UNIT),
        _job("lint", Status.FAILED, exit_code=2, allow_failure=True, allowed=True),
        _job("coded", Status.FAILED, exit_code=3, allow_failure=True, allowed=False),
        _job("later", Status.SKIPPED, error="skipped: unit failed"),
        _job("ship", Status.MANUAL),
    )
    assert _text(summary_table(run))[1:] == [
        "job stage status duration exit code tests",
        "unit test FAILED 2.00s 1 12 tests, 1 failed, 2 errors, 3 skipped",
        "lint test FAILED (allowed) 2.00s 2",
        "coded test FAILED 2.00s 3",  # allow_failure, but not this exit code
        "later test SKIPPED 2.00s",
        "ship test MANUAL 2.00s",
    ]


def test_summary_table_without_reports_has_no_tests_column() -> None:
    lines = _text(summary_table(_run(_job("unit", Status.SUCCESS, exit_code=0))))
    assert lines[1] == "job stage status duration exit code"


def test_run_and_stage_tables_tests_column() -> None:
    run = _run(_job("unit", Status.FAILED, exit_code=1, tests=UNIT), _job("x", Status.SKIPPED))
    now = T0 + timedelta(seconds=10)
    assert _text(run_table(run, now)) == [
        "stage / job status duration exit code image tests",
        "test FAILED 10.00s",
        "unit FAILED 2.00s 1 img 12 tests, 1 failed, 2 errors, 3 skipped",
        "x SKIPPED 2.00s img",
    ]
    assert _text(stage_table(run.stages[0], now))[0] == (
        "job status duration exit code image started tests"
    )


def test_job_details_tests_failed_names_and_error() -> None:
    job = _job(
        "unit",
        Status.FAILED,
        exit_code=1,
        error="exit\x1b[31m code",
        tests=UNIT.model_copy(update={"failed_names": ["pkg.test_\x1b]0;x\x07evil"]}),
    )
    lines = _text(job_details(job, T0 + timedelta(seconds=10)))
    assert "tests 12 tests, 1 failed, 2 errors, 3 skipped" in lines
    assert not any("\x1b" in line or "\x07" in line for line in lines)
    assert any(line.startswith("failed: pkg.test_") for line in lines)
    assert any(line.startswith("error exit") for line in lines)


def test_live_printer_skipped_reason_said_once() -> None:
    console = Console(width=200, color_system=None)
    printer = LivePrinter(console, ["unit"])
    with console.capture() as captured:
        printer(
            Event("job_finished", "p#1", "test", "unit", "skipped: build failed", Status.SKIPPED)
        )
        printer(Event("job_finished", "p#1", "test", "unit", "canceled", Status.CANCELED))
    assert captured.get().splitlines() == [
        "unit | SKIPPED: build failed",
        "unit | CANCELED: canceled",
    ]


def test_print_run_end_skipped_run_exits_0() -> None:
    console = Console(width=200, color_system=None)
    with console.capture():
        assert print_run_end(console, _run(_job("x", Status.SKIPPED), status=Status.SKIPPED)) == 0
        assert print_run_end(console, _run(_job("x", Status.SUCCESS), status=Status.SUCCESS)) == 0
        assert print_run_end(console, _run(_job("x", Status.FAILED), status=Status.FAILED)) == 1
        assert print_run_end(console, _run(_job("x", Status.CANCELED), status=Status.CANCELED)) == 1


def test_status_finished_knows_every_final_status() -> None:
    assert [s.value for s in Status if s.finished] == [
        "SUCCESS",
        "FAILED",
        "CANCELED",
        "SKIPPED",
        "MANUAL",
        "REUSED",
    ]
