"""``cicd report -p NAME --flaky [--last N]``: the options reach the flaky tests of the store."""

from __future__ import annotations

import json

from fabricate import Cicd, History


def test_report_flaky_lists_a_test_that_flipped(history: History, cicd: Cicd) -> None:
    build_1, build_2 = history.get("build#1"), history.get("build#2")
    history.store.add_test_cases(
        build_1.run_id, "unit", [("t.flaky", "passed"), ("t.ok", "passed")]
    )
    history.store.add_test_cases(
        build_2.run_id, "unit", [("t.flaky", "failed"), ("t.ok", "passed")]
    )
    result = cicd("report", "-p", "build", "--flaky", "--format", "json")
    assert (result.returncode, result.stderr) == (0, "")
    found = json.loads(result.stdout)
    assert (found["pipeline"], found["last"], found["runs"]) == ("build", 50, 2)
    assert [(t["job"], t["name"], t["flips"]) for t in found["tests"]] == [("unit", "t.flaky", 1)]
    only_last = json.loads(cicd("report", "-p", "build", "--flaky", "--last", "1",
                                "--format", "json").stdout)  # fmt: skip
    assert (only_last["last"], only_last["runs"], only_last["tests"]) == (1, 1, [])
