"""``cicd report NAME#N --graph`` and ``--format svg`` on a fabricated history, and the misuses."""

from __future__ import annotations

import json

from defusedxml import ElementTree
from fabricate import COMMIT_1, Cicd, History, Job, Run, Stage

from backend.schemas import Status

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = 'say "hi" <b>&amp; ]]> #1 \\'
ESCAPE = "\x1b[2Jwiped"


def _lane(label: str, blank: int, wait: int, bar: str, run: int, note: str) -> str:
    """A job's chart line: label, blanks, its wait, its run, blanks to the axis' end, note."""
    return (
        f"  {label:<8}"
        + " " * blank
        + "·" * wait
        + bar * run
        + " " * (81 - blank - wait - run)
        + f" {note}"
    )


def test_report_graph_draws_build_1_with_waits_and_critical_path(cicd: Cicd) -> None:
    result = cicd("report", "build#1", "--graph")
    assert (result.returncode, result.stderr) == (0, "")
    ticks = ["0.00s", "11.25s", "22.50s", "33.75s", "45.00s"]
    axis = " " * 10 + ticks[0] + " " * 15 + ticks[1] + " " * 14 + ticks[2] + " " * 14
    rule = "├" + "─" * 19 + ("┼" + "─" * 19) * 3 + "┤"
    assert result.stdout.splitlines() == [
        "build#1  SUCCESS  wall 45.00s",
        axis + ticks[3] + " " * 9 + ticks[4],
        " " * 10 + rule,
        "build",
        _lane("compile", 2, 0, "█", 18, "10.00s"),  # critical: a full block
        "test",
        _lane("unit", 20, 1, "█", 50, "28.00s  waited 1.00s for compile"),
        _lane("lint", 20, 1, "▓", 15, "8.00s  waited 1.00s for compile"),
        "deploy",
        _lane("publish", 71, 2, "█", 7, "4.00s  waited 1.00s for unit"),
        "critical path: compile -> unit -> publish",
    ]


def test_report_graph_positional_and_options_are_the_same_run(cicd: Cicd) -> None:
    positional = cicd("report", "build#2", "--graph", "--format", "json")
    options = cicd("report", "-p", "build", "--run", "2", "--graph", "--format", "json")
    assert positional.returncode == 0 and positional.stdout == options.stdout
    data = json.loads(positional.stdout)
    assert data["critical_path"] == ["compile", "unit"]
    jobs = {job["name"]: job for stage in data["stages"] for job in stage["jobs"]}
    assert jobs["unit"] == {
        "name": "unit",
        "status": "FAILED",
        "start_seconds": 67.0,
        "end_seconds": 125.0,
        "wait_seconds": 1.0,
        "waited_for": "compile",
        "critical": True,
    }
    assert jobs["publish"]["start_seconds"] is None and jobs["publish"]["wait_seconds"] is None


def test_report_positional_without_graph_is_the_run_report(cicd: Cicd) -> None:
    positional = cicd("report", "build#1", "--format", "json")
    options = cicd("report", "-p", "build", "--run", "1", "--format", "json")
    assert positional.returncode == 0 and positional.stdout == options.stdout


def test_report_svg_parses_and_names_the_critical_path(cicd: Cicd) -> None:
    result = cicd("report", "build#1", "--format", "svg")
    assert (result.returncode, result.stderr) == (0, "")
    root = ElementTree.fromstring(result.stdout.encode())
    assert root.tag == f"{SVG}svg"
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert {"compile", "unit", "lint", "publish", "build", "test", "deploy"} <= set(texts)
    assert "critical path: compile -> unit -> publish" in texts
    outlined = [r for r in root.iter(f"{SVG}rect") if r.get("stroke")]
    assert [r.findtext(f"{SVG}title").split(":")[0] for r in outlined] == [
        "compile",
        "unit",
        "publish",
    ]


def test_report_graph_hostile_job_names_stay_text(history: History, cicd: Cicd) -> None:
    history.record(
        Run("odd", Status.SUCCESS, COMMIT_1, "main", start=0, end=4, stages=[
            Stage("build", Status.SUCCESS, start=0, end=4, jobs=[
                Job(HOSTILE, "busybox", Status.SUCCESS, 0, 2, 0),
                Job(ESCAPE, "busybox", Status.SUCCESS, 2, 4, 0),
            ]),
        ])
    )  # fmt: skip
    svg = cicd("report", "odd#1", "--format", "svg")
    assert svg.returncode == 0, svg.stderr
    root = ElementTree.fromstring(svg.stdout.encode())
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert HOSTILE in texts
    assert ESCAPE.replace("\x1b", "\ufffd") in texts
    assert f"critical path: {HOSTILE} -> {ESCAPE.replace(chr(27), chr(0xFFFD))}" in texts
    graph = cicd("report", "odd#1", "--graph")
    assert graph.returncode == 0, graph.stderr
    assert "\x1b" not in graph.stdout
    assert graph.stdout.splitlines()[-1] == f"critical path: {HOSTILE} -> wiped"


def test_report_graph_needs_a_run(cicd: Cicd) -> None:
    for args in (
        ["-p", "build", "--graph"],
        ["--format", "svg"],
        ["build#1", "--job", "unit", "--graph"],
    ):
        result = cicd("report", *args)
        assert (result.returncode, result.stdout) == (2, ""), args
        assert result.stderr.startswith("error: --") and "draws one whole run" in result.stderr


def test_report_positional_and_options_naming_other_runs_is_usage_error(cicd: Cicd) -> None:
    result = cicd("report", "build#1", "--run", "2")
    assert (result.returncode, result.stderr) == (
        2,
        "error: build#1 and -p/--run name different runs: give one of them\n",
    )


def test_report_bad_run_name_is_usage_error(cicd: Cicd) -> None:
    result = cicd("report", "build", "--graph")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "error: 'build' is not a run name: expected NAME#N, e.g. build#3\n"


def test_report_graph_unknown_run_fails_with_one_line(cicd: Cicd) -> None:
    result = cicd("report", "build#9", "--graph")
    assert (result.returncode, result.stderr) == (1, "error: no run 'build#9'\n")


def test_report_flaky_with_a_run_is_usage_error(cicd: Cicd) -> None:
    result = cicd("report", "build#1", "--flaky")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "error: --flaky lists the tests of one pipeline: give -p NAME (no run)\n"
    )


def test_report_last_without_flaky_is_usage_error(cicd: Cicd) -> None:
    result = cicd("report", "-p", "build", "--last", "5")
    assert (result.returncode, result.stderr) == (2, "error: --last goes with --flaky\n")
