"""JUnit reports (``artifacts: reports: junit``): counting test cases, and hostile files.

A report is written by a job, so every test here hands the reader something a job could
leave: entity bombs, external entities, huge files, links out of the workspace, FIFOs.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from backend import reports
from backend.junit import MAX_FAILED_NAMES, JunitCounts, JunitError, parse_junit
from backend.reports import MAX_REPORT_BYTES, read_junit

SUITE = b"""<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="99" failures="0">
  <testsuite name="a">
    <testcase classname="pkg.A" name="ok" time="0.5"/>
    <testcase classname="pkg.A" name="broken" time="1.25"><failure message="no"/></testcase>
    <testcase name="crashed" time="bad"><error/></testcase>
    <testcase classname="pkg.B" name="later"><skipped message="todo"/></testcase>
  </testsuite>
  <testsuite name="b"><testcase classname="pkg.C" name="ok2" time="0.25"/></testsuite>
</testsuites>
"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<testsuite><testcase name="&lol9;"/></testsuite>
"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE testsuite [<!ENTITY leak SYSTEM "file:///etc/passwd">]>
<testsuite><testcase name="&leak;"><failure/></testcase></testsuite>
"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE testsuite SYSTEM "http://127.0.0.1:9/evil.dtd">
<testsuite><testcase name="x"/></testsuite>
"""


def _lines() -> tuple[list[str], reports.Callable[[str], None]]:
    lines: list[str] = []
    return lines, lines.append


def test_parse_junit_counts_test_cases_not_attributes() -> None:
    counts = parse_junit(SUITE)
    assert counts == JunitCounts(
        total=5,
        failed=1,
        errors=1,
        skipped=1,
        time=2.0,  # "bad" counts as 0
        failed_names=["pkg.A.broken", "crashed"],
    )


def test_parse_junit_single_testsuite_root_and_namespaces() -> None:
    data = (
        b'<testsuite xmlns="urn:x"><testcase name="a"/>'
        b'<testcase name="b"><failure/></testcase></testsuite>'
    )
    counts = parse_junit(data)
    assert (counts.total, counts.failed, counts.failed_names) == (2, 1, ["b"])


def test_parse_junit_failure_and_error_in_one_case_counts_as_failed_once() -> None:
    data = b"<testsuite><testcase name='a'><failure/><error/><skipped/></testcase></testsuite>"
    counts = parse_junit(data)
    assert (counts.total, counts.failed, counts.errors, counts.skipped) == (1, 1, 0, 0)


def test_parse_junit_absurd_times_count_as_zero() -> None:
    data = (
        b"<testsuite><testcase name='a' time='nan'/><testcase name='b' time='-5'/>"
        b"<testcase name='c' time='1e300'/><testcase name='d' time='1,000.5'/></testsuite>"
    )
    assert parse_junit(data).time == 1000.5


def test_parse_junit_failed_names_bounded_in_number_and_length() -> None:
    cases = b"".join(
        b"<testcase classname='c' name='"
        + b"n" * 1000
        + str(i).encode()
        + b"'><failure/></testcase>"
        for i in range(MAX_FAILED_NAMES + 20)
    )
    counts = parse_junit(b"<testsuite>" + cases + b"</testsuite>")
    assert counts.failed == MAX_FAILED_NAMES + 20
    assert len(counts.failed_names) == MAX_FAILED_NAMES
    assert all(len(name) == 300 and name.endswith("…") for name in counts.failed_names)


def test_parse_junit_control_characters_in_names_become_one_line() -> None:
    data = b"<testsuite><testcase name='a&#10;b&#9;c'><error/></testcase></testsuite>"
    assert parse_junit(data).failed_names == ["a b c"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (BILLION_LAUGHS, "refused: DTDForbidden (DTDs and entities are not allowed)"),
        (EXTERNAL_ENTITY, "refused: DTDForbidden (DTDs and entities are not allowed)"),
        (EXTERNAL_DTD, "refused: DTDForbidden (DTDs and entities are not allowed)"),
        (b"<html><body/></html>", "its root element is <html>, not <testsuites>"),
        (b"", "not well-formed XML (no element found: line 1, column 0)"),
        (b"<testsuite><testcase>", "not well-formed XML (no element found: line 1, column 21)"),
        (
            b"\xff\xfe<x/>",
            "not well-formed XML (not well-formed (invalid token): line 1, column 2)",
        ),
    ],
)
def test_parse_junit_hostile_or_broken_refused(data: bytes, message: str) -> None:
    started = time.monotonic()
    with pytest.raises(JunitError) as caught:
        parse_junit(data)
    assert str(caught.value) == message
    assert time.monotonic() - started < 1  # nothing was expanded


def test_read_junit_globs_and_sums_files(tmp_path: Path) -> None:
    (tmp_path / "reports" / "deep").mkdir(parents=True)
    (tmp_path / "reports" / "a.xml").write_bytes(SUITE)
    (tmp_path / "reports" / "deep" / "b.xml").write_bytes(
        b"<testsuite><testcase name='x'><failure/></testcase></testsuite>"
    )
    lines, line = _lines()
    counts = read_junit(tmp_path, ["reports/**/*.xml"], line)
    assert counts is not None
    assert (counts.total, counts.failed, counts.errors, counts.skipped) == (6, 2, 1, 1)
    assert counts.failed_names == ["pkg.A.broken", "crashed", "x"]
    assert lines == []


def test_read_junit_missing_file_warns_and_gives_none(tmp_path: Path) -> None:
    lines, line = _lines()
    assert read_junit(tmp_path, ["report.xml"], line) is None
    assert lines == ["cicd: junit report: warning: pattern 'report.xml' matched no files"]


def test_read_junit_hostile_files_each_one_warning_others_still_count(tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "0-good.xml").write_bytes(SUITE)
    (tmp_path / "r" / "1-bomb.xml").write_bytes(BILLION_LAUGHS)
    (tmp_path / "r" / "2-xxe.xml").write_bytes(EXTERNAL_ENTITY)
    with open(tmp_path / "r" / "3-huge.xml", "wb") as handle:
        handle.truncate(MAX_REPORT_BYTES + 1)  # sparse: no disk used
    (tmp_path / "r" / "4-html.xml").write_bytes(b"<html/>")
    lines, line = _lines()
    counts = read_junit(tmp_path, ["r/*.xml"], line)
    assert counts is not None and counts.total == 5
    assert lines == [
        "cicd: junit report: warning: 'r/1-bomb.xml' ignored: refused: DTDForbidden "
        "(DTDs and entities are not allowed)",
        "cicd: junit report: warning: 'r/2-xxe.xml' ignored: refused: DTDForbidden "
        "(DTDs and entities are not allowed)",
        "cicd: junit report: warning: 'r/3-huge.xml' ignored: it is larger than 10 MiB",
        "cicd: junit report: warning: 'r/4-html.xml' ignored: its root element is <html>, "
        "not <testsuites>",
    ]


def test_read_junit_symlink_out_of_workspace_not_read(tmp_path: Path) -> None:
    outside = tmp_path / "outside.xml"
    outside.write_bytes(SUITE)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "report.xml").symlink_to(outside)
    (workspace / "passwd.xml").symlink_to("/etc/passwd")
    lines, line = _lines()
    assert read_junit(workspace, ["*.xml"], line) is None
    assert sorted(lines) == [
        "cicd: junit report: warning: 'passwd.xml' is a symlink out of the workspace; skipped",
        "cicd: junit report: warning: 'report.xml' is a symlink out of the workspace; skipped",
        "cicd: junit report: warning: pattern '*.xml' matched no files",
    ]


def test_read_junit_fifo_never_blocks(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "report.xml")  # opening it for reading would wait for a writer
    lines, line = _lines()
    started = time.monotonic()
    assert read_junit(tmp_path, ["report.xml"], line) is None
    assert time.monotonic() - started < 2
    assert lines == ["cicd: junit report: warning: pattern 'report.xml' matched no files"]


def test_read_junit_escaping_pattern_refused(tmp_path: Path) -> None:
    lines, line = _lines()
    assert read_junit(tmp_path, ["../x.xml", "/etc/*.xml"], line) is None
    assert lines == [
        "cicd: junit report: warning: artifact pattern '../x.xml' escapes the workspace",
        "cicd: junit report: warning: artifact pattern '/etc/*.xml' escapes the workspace",
    ]


def test_read_junit_reads_at_most_max_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reports, "MAX_REPORT_FILES", 3)
    for i in range(5):
        (tmp_path / f"r{i}.xml").write_bytes(b"<testsuite><testcase name='t'/></testsuite>")
    lines, line = _lines()
    counts = read_junit(tmp_path, ["*.xml"], line)
    assert counts is not None and counts.total == 3
    assert lines == ["cicd: junit report: warning: 5 files match; only the first 3 are read"]
