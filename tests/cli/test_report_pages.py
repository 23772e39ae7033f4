"""``cicd report --limit/--status/--branch/--since`` through the console script, on a history of
build#1 (SUCCESS, main), build#2 (FAILED, feature/x) and docs#1 (SUCCESS, no branch)."""

from __future__ import annotations

import json
from typing import Any

from fabricate import Cicd


def names(data: dict[str, Any]) -> list[str]:
    """The runs of a ``--format json`` run list, NAME#N."""
    return [f"{r['pipeline']}#{r['run']}" for r in data["runs"]]


def as_json(cicd: Cicd, *args: str) -> dict[str, Any]:
    """``cicd report ARGS --format json``, decoded."""
    done = cicd("report", *args, "--format", "json")
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def test_report_limit_keeps_the_newest_runs(cicd: Cicd) -> None:
    data = as_json(cicd, "-p", "build", "--limit", "1")
    assert names(data) == ["build#2"]
    assert set(data) == {"pipeline", "runs"}  # the same object as without --limit


def test_report_limit_on_pipelines(cicd: Cicd) -> None:
    data = as_json(cicd, "--limit", "1")
    assert [p["pipeline"] for p in data["pipelines"]] == ["build"]
    assert set(data) == {"pipelines"}


def test_report_status_lists_runs_of_every_pipeline(cicd: Cicd) -> None:
    data = as_json(cicd, "--status", "success")
    assert (data["pipeline"], names(data)) == (None, ["docs#1", "build#1"])
    assert names(as_json(cicd, "--status", "FAILED", "-p", "build")) == ["build#2"]


def test_report_branch_and_since_narrow_the_runs(cicd: Cicd) -> None:
    assert names(as_json(cicd, "--branch", "feature/x")) == ["build#2"]
    assert names(as_json(cicd, "--since", "1h", "--limit", "2")) == ["docs#1", "build#2"]
    assert names(as_json(cicd, "--since", "2999-01-01T00:00")) == []
    text = cicd("report", "--since", "2999-01-01")
    assert (text.returncode, text.stdout.strip()) == (0, "no runs match")


def test_report_bad_since_or_limit_is_a_usage_error(cicd: Cicd) -> None:
    since = cicd("report", "--since", "last week")
    assert (since.returncode, since.stderr.strip()) == (2, (
        "error: --since 'last week': expected an ISO 8601 time (2026-01-31T12:00) or an age "
        "(30m, 2h, 7d)"
    ))
    assert cicd("report", "--limit", "0").returncode == 2
    with_run = cicd("report", "-p", "build", "--run", "1", "--status", "FAILED")
    assert (with_run.returncode, with_run.stderr.strip()) == (
        2, "error: --status, --branch and --since list runs: they do not go with --run"
    )
