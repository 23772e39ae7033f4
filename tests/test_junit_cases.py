"""Each test case's outcome as ``parse_junit`` keeps it for flaky tests, bounded per job."""

from __future__ import annotations

from backend.junit import MAX_CASES, JunitCounts, parse_junit

REPORT = b"""<?xml version="1.0"?>
<testsuites>
  <testsuite name="s">
    <testcase classname="pkg.A" name="ok"/>
    <testcase classname="pkg.A" name="broken"><failure message="x"/></testcase>
    <testcase name="crashed"><error/></testcase>
    <testcase classname="pkg.B" name="later"><skipped/></testcase>
  </testsuite>
</testsuites>
"""


def test_parse_junit_cases_name_and_outcome() -> None:
    assert parse_junit(REPORT).cases == [
        ("pkg.A.ok", "passed"),
        ("pkg.A.broken", "failed"),
        ("crashed", "error"),
        ("pkg.B.later", "skipped"),
    ]


def test_parse_junit_cases_bounded() -> None:
    cases = "".join(f'<testcase name="t{i}"/>' for i in range(MAX_CASES + 5))
    counts = parse_junit(f"<testsuite>{cases}</testsuite>".encode())

    assert (counts.total, len(counts.cases)) == (MAX_CASES + 5, MAX_CASES)
    assert counts.cases[-1] == (f"t{MAX_CASES - 1}", "passed")


def test_junit_counts_add_keeps_cases_bounded() -> None:
    total = JunitCounts(cases=[("a", "passed")] * (MAX_CASES - 1))

    total.add(parse_junit(REPORT))

    assert len(total.cases) == MAX_CASES
    assert total.cases[-1] == ("pkg.A.ok", "passed")
