"""``cicd status`` and ``cicd cancel`` through the real console script."""

from __future__ import annotations

import json
import re

from fabricate import Cicd, History, Run, rows


def test_status_without_runs_in_progress_says_so(cicd: Cicd) -> None:
    result = cicd("status")
    assert (result.returncode, result.stdout, result.stderr) == (0, "no runs in progress\n", "")


def test_status_lists_runs_in_progress(cicd: Cicd, running: Run) -> None:
    result = cicd("status")
    assert result.returncode == 0, result.stderr
    table = rows(result.stdout)
    assert table[0] == "run status commit branch started duration worker"
    assert len(table) == 2
    pattern = r"deploy#1 RUNNING fedcba987654 main [3-5]\ds ago [3-5]\d\.\d\ds "
    assert re.fullmatch(pattern + re.escape(running.worker or ""), table[1]), table[1]


def test_status_json_lists_runs_in_progress(cicd: Cicd, running: Run) -> None:
    result = cicd("status", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [(r["pipeline"], r["run"], r["status"]) for r in data["runs"]] == [
        ("deploy", 1, "RUNNING")
    ]
    assert "stages" not in data["runs"][0]


def test_status_of_running_run_shows_jobs_and_elapsed(cicd: Cicd, running: Run) -> None:
    result = cicd("status", "deploy#1")
    assert result.returncode == 0, result.stderr
    lines = rows(result.stdout)
    assert re.fullmatch(r"deploy#1 RUNNING running for [3-5]\d\.\d\ds", lines[0]), lines[0]
    assert lines[2:] == [
        "stage / job status duration exit code image",
        lines[3],
        lines[4],
        "notify PENDING alpine:3.20",
    ]
    assert re.fullmatch(r"ship RUNNING [3-5]\d\.\d\ds", lines[3]), lines[3]
    assert re.fullmatch(r"push RUNNING [3-5]\d\.\d\ds alpine:3\.20", lines[4]), lines[4]


def test_status_of_run_json_is_report_json(cicd: Cicd) -> None:
    status = cicd("status", "build#2", "--format", "json")
    report = cicd("report", "-p", "build", "--run", "2", "--format", "json")
    assert status.returncode == 0, status.stderr
    assert status.stdout == report.stdout


def test_status_of_unknown_run_fails_with_one_line(cicd: Cicd) -> None:
    result = cicd("status", "docs#5")
    assert (result.returncode, result.stdout, result.stderr) == (1, "", "error: no run 'docs#5'\n")


def test_status_bad_run_name_is_usage_error(cicd: Cicd) -> None:
    result = cicd("status", "docs#x")
    assert (result.returncode, result.stderr) == (
        2,
        "error: 'docs#x' is not a run name: expected NAME#N, e.g. build#3\n",
    )


def test_cancel_finished_run_says_already_finished(cicd: Cicd) -> None:
    result = cicd("cancel", "build#2")
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        "build#2 already finished (FAILED)\n",
        "",
    )


def test_cancel_running_run_nothing_executes_settles_it(
    cicd: Cicd, history: History, running: Run
) -> None:
    # deploy#1's worker (this process) is alive but has no flow for it: cancel settles it
    result = cicd("cancel", "deploy#1")
    assert (result.returncode, result.stdout, result.stderr) == (0, "deploy#1: canceled\n", "")
    after = history.store.get_run("deploy", 1)
    assert after.status.value == "CANCELED"
    assert [job.status.value for job in after.stages[0].jobs] == ["CANCELED", "CANCELED"]


def test_cancel_unknown_run_fails_with_one_line(cicd: Cicd) -> None:
    result = cicd("cancel", "build#9")
    assert (result.returncode, result.stdout, result.stderr) == (1, "", "error: no run 'build#9'\n")


def test_cancel_bad_run_name_is_usage_error(cicd: Cicd) -> None:
    result = cicd("cancel", "build")
    assert result.returncode == 2
