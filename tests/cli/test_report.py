"""``cicd report`` through the real console script: every level, every format, every misuse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fabricate import Cicd, History, Job, Run, Stage, rows, run_cicd
from ruamel.yaml import YAML

from backend.schemas import JunitPublic


def iso(value: Any) -> str | None:
    """How SPEC §3.1 writes a time."""
    return None if value is None else value.isoformat()


def job_json(job: Job) -> dict[str, Any]:
    """SPEC §3.1's job object."""
    return {
        "name": job.name,
        "status": job.status.value,
        "allow_failure": job.allow_failure,
        "exit_code": job.exit_code,
        "image": job.image,
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "allowed": job.allowed,
        "error": job.error,
        "tests": None if job.tests is None else job.tests.model_dump(mode="json"),
        "junit": junit.model_dump(mode="json") if (junit := JunitPublic.of(job.tests)) else None,
        "memory_peak_bytes": None,
        "cpu_seconds": None,
        "needs": None,
        "reused_from": None,
    }


def stage_json(stage: Stage) -> dict[str, Any]:
    """SPEC §3.1's stage object."""
    return {
        "name": stage.name,
        "status": stage.status.value,
        "started_at": iso(stage.started_at),
        "finished_at": iso(stage.finished_at),
        "jobs": [job_json(job) for job in stage.jobs],
    }


def summary_json(run: Run) -> dict[str, Any]:
    """SPEC §3.1's run object without "stages"."""
    return {
        "pipeline": run.pipeline,
        "run": run.number,
        "status": run.status.value,
        "commit": run.commit,
        "branch": run.branch,
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "worker": run.worker,
    }


def run_json(run: Run) -> dict[str, Any]:
    """SPEC §3.1's run object."""
    return {
        **summary_json(run),
        "stages": [stage_json(stage) for stage in run.stages],
        "repo": "/src/project",
        "file": ".pipelines/pipeline.yaml",
        "overrides": [],
        "retry_of": None,
    }


def as_json(data: Any) -> str:
    """What ``--format json`` prints for ``data``: indented, keys in order, one newline."""
    return json.dumps(data, indent=2) + "\n"


def load_yaml(text: str) -> Any:
    """Parse YAML 1.2."""
    return YAML(typ="safe", pure=True).load(text)


def test_report_all_pipelines_text(cicd: Cicd) -> None:
    result = cicd("report")
    assert result.returncode == 0, result.stderr
    assert rows(result.stdout) == [
        "pipeline runs last run status started",
        "build 2 build#2 FAILED 2024-05-01 11:00",
        "docs 1 docs#1 SUCCESS 2024-05-01 12:00",
    ]


def test_report_all_pipelines_json(cicd: Cicd, history: History) -> None:
    result = cicd("report", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert result.stdout == as_json(
        {
            "pipelines": [
                {
                    "pipeline": "build",
                    "runs": 2,
                    "last_run": 2,
                    "last_status": "FAILED",
                    "last_started_at": "2024-05-01T11:00:00+00:00",
                },
                {
                    "pipeline": "docs",
                    "runs": 1,
                    "last_run": 1,
                    "last_status": "SUCCESS",
                    "last_started_at": "2024-05-01T12:00:00+00:00",
                },
            ]
        }
    )


def test_report_empty_home_says_no_runs(tmp_path: Path) -> None:
    result = run_cicd(tmp_path / "empty")("report")
    assert (result.returncode, result.stdout, result.stderr) == (0, "no runs yet\n", "")


def test_report_pipeline_json_lists_runs_newest_first(cicd: Cicd, history: History) -> None:
    result = cicd("report", "-p", "build", "--format", "json")
    assert result.returncode == 0, result.stderr
    expected = {
        "pipeline": "build",
        "runs": [summary_json(history.get("build#2")), summary_json(history.get("build#1"))],
    }
    assert result.stdout == as_json(expected)


def test_report_pipeline_yaml_is_the_json_data(cicd: Cicd, history: History) -> None:
    as_yaml = cicd("report", "--pipeline", "build", "--format", "yaml")
    as_json_ = cicd("report", "--pipeline", "build", "--format", "json")
    assert as_yaml.returncode == 0, as_yaml.stderr
    loaded = load_yaml(as_yaml.stdout)
    assert loaded == json.loads(as_json_.stdout)
    assert list(loaded["runs"][0]) == list(summary_json(history.get("build#2")))


def test_report_pipeline_text_has_one_row_per_run(cicd: Cicd) -> None:
    result = cicd("report", "-p", "build")
    assert result.returncode == 0, result.stderr
    assert rows(result.stdout) == [
        "run status commit branch started duration worker",
        "build#2 FAILED fedcba987654 feature/x 2024-05-01 11:00 2m05s ci-host/embedded-4242",
        "build#1 SUCCESS 0a1b2c3d4e5f main 2024-05-01 10:00 45.00s ci-host/embedded-4242",
    ]


def test_report_run_json_is_spec_run_object(cicd: Cicd, history: History) -> None:
    result = cicd("report", "-p", "build", "--run", "2", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert result.stdout == as_json(run_json(history.get("build#2")))


def test_report_run_json_without_branch_has_null(cicd: Cicd, history: History) -> None:
    result = cicd("report", "-p", "docs", "--run", "1", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert result.stdout == as_json(run_json(history.get("docs#1")))
    assert json.loads(result.stdout)["branch"] is None


def test_report_run_yaml_is_the_json_data(cicd: Cicd, history: History) -> None:
    result = cicd("report", "-p", "build", "--run", "2", "--format", "yaml")
    assert result.returncode == 0, result.stderr
    loaded = load_yaml(result.stdout)
    assert loaded == run_json(history.get("build#2"))
    assert list(loaded) == list(run_json(history.get("build#2")))
    assert "started_at: '2024-05-01T11:00:00+00:00'" in result.stdout


def test_report_run_text_has_header_and_stage_job_rows(cicd: Cicd) -> None:
    result = cicd("report", "-p", "build", "--run", "2")
    assert result.returncode == 0, result.stderr
    assert rows(result.stdout) == [
        "build#2 FAILED in 2m05s",
        "commit fedcba987654 · on feature/x · worker ci-host/embedded-4242 · "
        "started 2024-05-01 11:00",
        "stage / job status duration exit code image",
        "build SUCCESS 1m05s",
        "compile SUCCESS 1m05s 0 gcc:14",
        "test FAILED 58.00s",
        "unit FAILED 58.00s 1 python:3.12-slim",
        "lint FAILED (allowed) 3.00s 2 python:3.12-slim",
        "deploy CANCELED",
        "publish CANCELED alpine:3.20",
    ]


def test_report_stage_json_is_spec_stage_object(cicd: Cicd, history: History) -> None:
    result = cicd("report", "-p", "build", "--run", "2", "--stage", "test", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert result.stdout == as_json(stage_json(history.get("build#2").stages[1]))


def test_report_stage_text_lists_its_jobs(cicd: Cicd) -> None:
    result = cicd("report", "-p", "build", "--run", "2", "--stage", "test")
    assert result.returncode == 0, result.stderr
    assert rows(result.stdout) == [
        "build#2 stage test FAILED 58.00s",
        "job status duration exit code image started",
        "unit FAILED 58.00s 1 python:3.12-slim 2024-05-01 11:01",
        "lint FAILED (allowed) 3.00s 2 python:3.12-slim 2024-05-01 11:01",
    ]


def test_report_job_json_finds_job_in_any_stage(cicd: Cicd, history: History) -> None:
    result = cicd("report", "-p", "build", "--run", "2", "--job", "lint", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert result.stdout == as_json(job_json(history.get("build#2").job("lint")))


def test_report_job_never_started_json_has_nulls(cicd: Cicd) -> None:
    result = cicd("report", "-p", "build", "--run", "2", "--job", "publish", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "name": "publish",
        "status": "CANCELED",
        "allow_failure": False,
        "exit_code": None,
        "image": "alpine:3.20",
        "started_at": None,
        "finished_at": None,
        "allowed": False,
        "error": None,
        "tests": None,
        "junit": None,
        "memory_peak_bytes": None,
        "cpu_seconds": None,
        "needs": None,
        "reused_from": None,
    }


def test_report_job_text_shows_fields(cicd: Cicd) -> None:
    result = cicd("report", "-p", "build", "--run", "2", "--job", "unit")
    assert result.returncode == 0, result.stderr
    assert rows(result.stdout) == [
        "build#2",
        "job unit",
        "status FAILED",
        "exit code 1",
        "image python:3.12-slim",
        "allow failure no",
        "started 2024-05-01 11:01:07 UTC",
        "finished 2024-05-01 11:02:05 UTC",
        "duration 58.00s",
    ]


def test_report_stage_and_job_narrow_to_the_job(cicd: Cicd, history: History) -> None:
    args = ("report", "-p", "build", "--run", "2", "--stage", "test", "--job", "unit")
    result = cicd(*args, "--format", "json")
    assert result.returncode == 0, result.stderr
    assert result.stdout == as_json(job_json(history.get("build#2").job("unit")))


def test_report_job_outside_given_stage_fails(cicd: Cicd) -> None:
    result = cicd("report", "-p", "build", "--run", "2", "--stage", "build", "--job", "unit")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "error: no job 'unit' in stage 'build' of run 'build#2'\n"


def test_report_run_without_pipeline_is_usage_error(cicd: Cicd) -> None:
    result = cicd("report", "--run", "2")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "error: --run needs -p/--pipeline\n"


def test_report_stage_without_run_is_usage_error(cicd: Cicd) -> None:
    result = cicd("report", "-p", "build", "--stage", "test")
    assert (result.returncode, result.stderr) == (2, "error: --stage needs --run\n")


def test_report_job_without_run_is_usage_error(cicd: Cicd) -> None:
    result = cicd("report", "-p", "build", "--job", "unit")
    assert (result.returncode, result.stderr) == (2, "error: --job needs --run\n")


def test_report_unknown_format_is_usage_error(cicd: Cicd) -> None:
    result = cicd("report", "--format", "xml")
    assert result.returncode == 2
    assert "'xml' is not one of 'text', 'json', 'yaml'" in result.stderr


def test_report_run_zero_is_usage_error(cicd: Cicd) -> None:
    result = cicd("report", "-p", "build", "--run", "0")
    assert result.returncode == 2


def test_report_unknown_pipeline_fails_with_one_line(cicd: Cicd) -> None:
    result = cicd("report", "-p", "nope")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "error: no runs of pipeline 'nope'\n"


def test_report_unknown_run_fails_with_one_line(cicd: Cicd) -> None:
    result = cicd("report", "-p", "build", "--run", "9")
    assert (result.returncode, result.stderr) == (1, "error: no run 'build#9'\n")


def test_report_unknown_stage_fails_with_one_line(cicd: Cicd) -> None:
    result = cicd("report", "-p", "build", "--run", "2", "--stage", "lint")
    assert (result.returncode, result.stderr) == (1, "error: no stage 'lint' in run 'build#2'\n")


def test_report_unknown_job_fails_with_one_line(cicd: Cicd) -> None:
    result = cicd("report", "-p", "build", "--run", "2", "--job", "nope")
    assert (result.returncode, result.stderr) == (1, "error: no job 'nope' in run 'build#2'\n")
