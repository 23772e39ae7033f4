"""``cicd logs`` through the real console script: one job, every job, following a live job."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime

from fabricate import CICD, Cicd, History, Run, cli_env

from backend.recording import log_path, stamp
from backend.schemas import Status


def test_logs_one_job_prints_lines_as_stored(cicd: Cicd, history: History) -> None:
    result = cicd("logs", "build#2", "--job", "unit")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == history.get("build#2").job("unit").log_lines()
    assert result.stdout.splitlines()[0] == "2024-05-01T11:01:08.000Z collected 3 items"


def test_logs_no_timestamps_prints_text_only(cicd: Cicd) -> None:
    result = cicd("logs", "build#2", "-j", "unit", "--no-timestamps")
    assert (result.returncode, result.stdout) == (
        0,
        "collected 3 items\nFAILED test_app.py::test_x\n1 failed, 2 passed\n",
    )


def test_logs_every_job_in_plan_order_prefixed(cicd: Cicd) -> None:
    result = cicd("logs", "build#2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "compile | 2024-05-01T11:00:02.000Z gcc -c main.c",
        "compile | 2024-05-01T11:01:05.000Z gcc -o app main.o",
        "unit    | 2024-05-01T11:01:08.000Z collected 3 items",
        "unit    | 2024-05-01T11:01:40.000Z FAILED test_app.py::test_x",
        "unit    | 2024-05-01T11:02:04.000Z 1 failed, 2 passed",
        "lint    | 2024-05-01T11:01:09.000Z app.py:1:1: F401 'os' imported but unused",
    ]
    assert result.stderr == ""


def test_logs_follow_finished_run_prints_everything_and_ends(cicd: Cicd) -> None:
    result = cicd("logs", "build#2", "--follow", "--no-timestamps", timeout=30)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["compile | gcc -c main.c", "compile | gcc -o app main.o"]
    assert len(lines) == 6


def test_logs_job_that_never_started_fails_with_one_line(cicd: Cicd) -> None:
    result = cicd("logs", "build#2", "--job", "publish")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "error: job 'publish' of build#2 has no log (it never started)\n"


def test_logs_unknown_job_fails_with_one_line(cicd: Cicd) -> None:
    result = cicd("logs", "build#2", "--job", "nope")
    assert (result.returncode, result.stderr) == (1, "error: no job 'nope' in run 'build#2'\n")


def test_logs_unknown_run_fails_with_one_line(cicd: Cicd) -> None:
    result = cicd("logs", "build#9")
    assert (result.returncode, result.stderr) == (1, "error: no run 'build#9'\n")


def test_logs_bad_run_name_is_usage_error(cicd: Cicd) -> None:
    result = cicd("logs", "build")
    assert result.returncode == 2
    assert result.stderr == "error: 'build' is not a run name: expected NAME#N, e.g. build#3\n"


def test_logs_follow_streams_until_job_ends(history: History, running: Run) -> None:
    log_file = log_path(history.settings.logs_dir, "deploy", 1, "push")
    with subprocess.Popen(
        [str(CICD), "logs", "deploy#1", "--job", "push", "--follow", "--no-timestamps"],
        env=cli_env(history.home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as follower:
        time.sleep(2.0)  # it is waiting for lines by now (or will read them at start: same result)
        assert follower.poll() is None, "--follow ended while the job was still running"
        with log_file.open("a", encoding="utf-8") as handle:
            for text in ("pushing image", "pushed"):
                handle.write(f"{stamp(datetime.now(UTC))} {text}\n")
                handle.flush()
        history.store.set_job(
            running.run_id, "push", status=Status.SUCCESS, exit_code=0,
            finished_at=datetime.now(UTC),
        )
        out, err = follower.communicate(timeout=30)
    assert (follower.returncode, out, err) == (0, "pushing image\npushed\n", "")


def test_logs_follow_every_job_of_running_run_until_all_end(
    history: History, running: Run
) -> None:
    log_file = log_path(history.settings.logs_dir, "deploy", 1, "push")
    with subprocess.Popen(
        [str(CICD), "logs", "deploy#1", "--follow", "--no-timestamps"],
        env=cli_env(history.home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as follower:
        time.sleep(2.0)
        assert follower.poll() is None, "--follow ended while the run was still going"
        with log_file.open("a", encoding="utf-8") as handle:
            handle.write(f"{stamp(datetime.now(UTC))} pushed\n")
        now = datetime.now(UTC)
        history.store.set_job(running.run_id, "push", status=Status.SUCCESS, finished_at=now)
        history.store.set_job(running.run_id, "notify", status=Status.CANCELED)  # never ran
        out, err = follower.communicate(timeout=30)
    assert (follower.returncode, out, err) == (0, "push   | pushed\n", "")
