"""Reading JUnit XML test reports: counts of test cases and the names of those that failed.

A report is written by a job, so it is hostile input: it is parsed with ``defusedxml``, which
refuses any DTD (so no entity expansion, "billion laughs", and no external entity or DTD
fetched from a file or the network), and only after its size was checked. Counts come from the
``<testcase>`` elements themselves (as GitLab counts them), not from the ``tests=``/``failures=``
attributes a tool may get wrong: a test case with a ``<failure>`` failed, one with an ``<error>``
errored, one with a ``<skipped>`` was skipped.
"""

from __future__ import annotations

import io
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

MAX_FAILED_NAMES = 50  # failed test names kept per job
MAX_CASES = 5000  # test cases whose outcome is kept per job (for flaky tests)
MAX_NAME_CHARS = 300  # each cut to this many characters
MAX_TIME = 10.0**9  # seconds; beyond it a time attribute is nonsense and counts as 0


class JunitError(Exception):
    """A report that is not JUnit XML we can read; the message says why in a few words."""


@dataclass
class JunitCounts:
    """What one or more JUnit reports counted."""

    total: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    time: float = 0.0
    failed_names: list[str] = field(default_factory=list)
    # ``(classname.name, passed | failed | error | skipped)`` of the first MAX_CASES test cases:
    # the detail behind the counts (kept for flaky tests), not part of what they compare
    cases: list[tuple[str, str]] = field(default_factory=list, compare=False)

    def add(self, other: JunitCounts) -> None:
        """Add ``other``'s counts (and failed names, up to ``MAX_FAILED_NAMES``) to these."""
        self.total += other.total
        self.failed += other.failed
        self.errors += other.errors
        self.skipped += other.skipped
        self.time += other.time
        room = MAX_FAILED_NAMES - len(self.failed_names)
        self.failed_names += other.failed_names[: max(room, 0)]
        self.cases += other.cases[: max(MAX_CASES - len(self.cases), 0)]


def parse_junit(data: bytes) -> JunitCounts:
    """Count the test cases of one JUnit XML document (``<testsuites>`` or ``<testsuite>``).

    Parsed incrementally, each test case dropped once counted, so memory stays small whatever
    the document holds. Raises ``JunitError`` when it is not well-formed XML, holds a DTD or
    entity declaration, or its root is neither element.
    """
    counts = JunitCounts()
    root_checked = False
    try:
        events = iterparse(
            io.BytesIO(data), events=("start", "end"), forbid_dtd=True, forbid_entities=True
        )
        for event, element in events:
            if event == "start":
                if not root_checked:
                    _check_root(element)
                    root_checked = True
                continue
            if _local(element.tag) == "testcase":
                _count(counts, element)
                element.clear()  # its children are counted: let them go
    except DefusedXmlException as exc:
        raise JunitError(
            f"refused: {type(exc).__name__} (DTDs and entities are not allowed)"
        ) from None
    except ET.ParseError as exc:
        raise JunitError(f"not well-formed XML ({exc})") from None
    if not root_checked:
        raise JunitError("it holds no XML element")
    return counts


def _check_root(element: ET.Element) -> None:
    if _local(element.tag) not in ("testsuites", "testsuite"):
        raise JunitError(f"its root element is <{_local(element.tag)[:40]}>, not <testsuites>")


def _count(counts: JunitCounts, case: ET.Element) -> None:
    """Add one ``<testcase>`` to ``counts``."""
    counts.total += 1
    counts.time += _seconds(case.get("time"))
    outcomes = {_local(child.tag) for child in case}
    outcome = "passed"
    if "failure" in outcomes:
        counts.failed += 1
        outcome = "failed"
    elif "error" in outcomes:
        counts.errors += 1
        outcome = "error"
    elif "skipped" in outcomes:
        counts.skipped += 1
        outcome = "skipped"
    if len(counts.cases) < MAX_CASES:
        counts.cases.append((_case_name(case), outcome))
    if ("failure" in outcomes or "error" in outcomes) and len(
        counts.failed_names
    ) < MAX_FAILED_NAMES:
        counts.failed_names.append(_case_name(case))


def _local(tag: object) -> str:
    """An element's name without a namespace (``{ns}testcase`` -> ``testcase``)."""
    text = tag if isinstance(tag, str) else ""  # comments and processing instructions
    return text.rsplit("}", 1)[-1]


def _seconds(value: str | None) -> float:
    """A ``time`` attribute in seconds; 0 when missing, not a number, negative or absurd."""
    if not value:
        return 0.0
    try:
        seconds = float(value.replace(",", ""))  # some tools write 1,234.5
    except ValueError:
        return 0.0
    return seconds if math.isfinite(seconds) and 0 <= seconds <= MAX_TIME else 0.0


def _case_name(case: ET.Element) -> str:
    """``classname.name`` (or just ``name``), one line, at most ``MAX_NAME_CHARS`` characters."""
    name = case.get("name") or "(unnamed)"
    classname = case.get("classname")
    full = f"{classname}.{name}" if classname else name
    full = " ".join(full.split())
    return full if len(full) <= MAX_NAME_CHARS else full[: MAX_NAME_CHARS - 1] + "…"
