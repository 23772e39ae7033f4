"""Drawing a ``Timeline``: a text Gantt chart (terminal and markdown) and an SVG picture.

Plain text and XML only; the CLI gives the chart's pieces their colours. Names are data: the
chart keeps them as given (the terminal strips control characters; markdown puts the chart in
a code fence that no name can close), the SVG escapes them.
"""

from __future__ import annotations

import re
from xml.sax.saxutils import escape as _escape
from xml.sax.saxutils import quoteattr

from backend.schemas import Status
from backend.timeline import Bar, Timeline, cells, seconds_text

RUN, CRITICAL, WAIT, EMPTY = "▓", "█", "·", " "
TICKS = 4  # intervals on the time axis
# a segment of a chart line and what it is: title, axis, stage, label, wait, run:STATUS (a bar
# off the critical path), critical, note
Segment = tuple[str, str]


def _label(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters (an ellipsis marks the cut), left-aligned."""
    if len(text) > width:
        text = text[: max(0, width - 1)] + "…"
    return text.ljust(width)


def axis_lines(wall: float, width: int, indent: int) -> list[str]:
    """The time axis: tick labels over ``├──┼──┤``, ``indent`` spaces before."""
    marks = [round(i * width / TICKS) for i in range(TICKS + 1)]
    labels = [" "] * (width + 12)
    for i, mark in enumerate(marks if wall > 0 else marks[:1]):
        text = seconds_text(wall * i / TICKS) if wall > 0 else "0s"
        at = mark - len(text) + 1 if i == TICKS else mark
        labels[at : at + len(text)] = list(text)
    rule = ["─"] * (width + 1)
    for mark in marks:
        rule[mark] = "┼"
    rule[0], rule[width] = "├", "┤"
    return [" " * indent + "".join(labels).rstrip(), " " * indent + "".join(rule)]


def bar_segments(bar: Bar, wall: float, width: int) -> list[Segment]:
    """One job's lane: blanks, its wait (``·``), its run (``█``), blanks."""
    where = cells(bar, wall, width)
    if where is None:
        return [(EMPTY * (width + 1), "axis")]
    wait_from, begin, end = where
    kind = "critical" if bar.critical else f"run:{bar.status.value}"
    return [
        (EMPTY * wait_from, "axis"),
        (WAIT * (begin - wait_from), "wait"),
        ((CRITICAL if bar.critical else RUN) * (end - begin), kind),
        (EMPTY * (width + 1 - end), "axis"),
    ]


def bar_note(bar: Bar) -> str:
    """After the lane: its duration, its status unless SUCCESS, what it waited for and how long."""
    parts = [seconds_text(bar.duration) or "-"]
    if bar.status is not Status.SUCCESS:
        parts.append(bar.status.value)
    if bar.wait is not None and bar.waited_for is not None:
        parts.append(f"waited {seconds_text(bar.wait)} for {bar.waited_for}")
    elif bar.wait is not None and bar.wait > 0:
        parts.append(f"waited {seconds_text(bar.wait)}")
    return "  ".join(parts)


def chart_lines(timeline: Timeline, width: int = 50, label_width: int = 20) -> list[list[Segment]]:
    """The Gantt chart, line by line: header, axis, per stage its name then a lane per job,
    and the ``critical path: a -> b`` line."""
    indent = label_width + 2
    head = f"{timeline.name}  {timeline.status.value}  wall {seconds_text(timeline.wall)}"
    lines: list[list[Segment]] = [[(head, "title")]]
    lines += [[(line, "axis")] for line in axis_lines(timeline.wall, width, indent)]
    for stage, bars in timeline.stages:
        lines.append([(_label(stage, indent).rstrip(), "stage")])
        for bar in bars:
            lines.append(
                [
                    ("  " + _label(bar.job, label_width), "label"),
                    *bar_segments(bar, timeline.wall, width),
                    (" " + bar_note(bar), "note"),
                ]
            )
    lines.append([(critical_path_line(timeline), "critical")])
    return lines


def critical_path_line(timeline: Timeline) -> str:
    """``critical path: a -> b -> d`` (``critical path: none`` when no job ended)."""
    return "critical path: " + (" -> ".join(timeline.critical_path) or "none")


def to_markdown(timeline: Timeline) -> str:
    """The chart in a code fence, then a table of the jobs, for a Prefect markdown artifact."""
    chart = "\n".join(
        "".join(text for text, _ in line).rstrip() for line in chart_lines(timeline, 50, 20)
    )
    fence = "`" * max(3, _longest_run(chart, "`") + 1)
    rows = [
        "| stage | job | status | start | duration | waited | for | critical |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for stage, bars in timeline.stages:
        for bar in bars:
            cells_ = [
                _md_cell(stage),
                _md_cell(bar.job),
                bar.status.value,
                seconds_text(bar.start),
                seconds_text(bar.duration),
                seconds_text(bar.wait),
                _md_cell(bar.waited_for or ""),
                "yes" if bar.critical else "",
            ]
            rows.append("| " + " | ".join(cells_) + " |")
    path = " → ".join(_md_cell(name) for name in timeline.critical_path) or "none"
    return "\n".join(
        [
            f"## {_md_cell(timeline.name)}: {timeline.status.value} in "
            f"{seconds_text(timeline.wall)}",
            "",
            f"**Critical path:** {path}",
            "",
            fence + "text",
            chart,
            fence,
            "",
            *rows,
            "",
        ]
    )


def _longest_run(text: str, char: str) -> int:
    longest = current = 0
    for ch in text:
        current = current + 1 if ch == char else 0
        longest = max(longest, current)
    return longest


def _md_cell(text: str) -> str:
    """``text`` for a markdown table cell: no HTML, no emphasis, links or breaks out of it."""
    out = []
    for ch in text:
        if ch in "\\`*_{}[]()<>|&~":
            out.append(f"&#{ord(ch)};")
        elif ch in "\r\n":
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


SVG_COLOURS = {
    Status.SUCCESS: "#4c9a6a",
    Status.FAILED: "#c0392b",
    Status.CANCELED: "#d4a017",
    Status.SKIPPED: "#999999",
    Status.RUNNING: "#2e86c1",
    Status.PENDING: "#cccccc",
    Status.MANUAL: "#9b59b6",
    Status.REUSED: "#a9cfb4",
}
CRITICAL_STROKE = "#e0115f"


def to_svg(timeline: Timeline, width: int = 960) -> str:
    """The run as an SVG Gantt chart: a row per job under its stage's heading, bars on a time
    axis, waits as thin lines, the critical path outlined and named at the bottom."""
    left, right, top, row = 240, 40, 60, 22
    plot = width - left - right
    scale = plot / timeline.wall if timeline.wall > 0 else 0.0
    rows = sum(1 + len(bars) for _, bars in timeline.stages)
    height = top + rows * row + 50
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f"<title>{escape(timeline.name)}</title>",
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="20" font-size="15" font-weight="bold">{escape(timeline.name)}  '
        f"{timeline.status.value}  wall {escape(seconds_text(timeline.wall))}</text>",
    ]
    for i in range(TICKS + 1):
        x = left + plot * i / TICKS
        label = seconds_text(timeline.wall * i / TICKS) if timeline.wall > 0 else "0s"
        out.append(
            f'<line x1="{x:.1f}" y1="{top - 10}" x2="{x:.1f}" y2="{height - 40}" stroke="#e5e5e5"/>'
        )
        out.append(
            f'<text x="{x:.1f}" y="{top - 15}" text-anchor="middle" fill="#555">'
            f"{escape(label)}</text>"
        )
    y = top
    for stage, bars in timeline.stages:
        out.append(f'<text x="10" y="{y + 15}" font-weight="bold">{escape(_cut(stage, 34))}</text>')
        y += row
        for bar in bars:
            out.append(f'<text x="24" y="{y + 15}">{escape(_cut(bar.job, 32))}</text>')
            out += _svg_bar(bar, left, y, row, scale)
            y += row
    out.append(
        f'<text x="10" y="{height - 15}" fill="{CRITICAL_STROKE}" font-weight="bold">'
        f"{escape(critical_path_line(timeline))}</text>"
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def escape(text: str) -> str:
    """``text`` as XML character data: ``&``, ``<``, ``>`` escaped, characters XML 1.0 cannot
    hold (controls, lone surrogates) replaced by U+FFFD."""
    return _escape(_NOT_XML.sub("\ufffd", text))


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _svg_bar(bar: Bar, left: int, y: int, row: int, scale: float) -> list[str]:
    """A job's wait line and run rectangle, with a tooltip."""
    if bar.start is None:
        return []
    parts = []
    if bar.ready is not None and bar.start > bar.ready:
        x1, x2 = left + max(0.0, bar.ready) * scale, left + max(0.0, bar.start) * scale
        parts.append(
            f'<line x1="{x1:.1f}" y1="{y + row / 2}" x2="{x2:.1f}" y2="{y + row / 2}" '
            'stroke="#888" stroke-dasharray="3 2"/>'
        )
    x = left + max(0.0, bar.start) * scale
    w = max(2.0, (bar.duration or 0.0) * scale)
    stroke = f' stroke="{CRITICAL_STROKE}" stroke-width="3"' if bar.critical else ""
    tip = f"{bar.job}: {bar.status.value}, {bar_note(bar)}"
    parts.append(
        f'<rect x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="{row - 8}" rx="3" '
        f"fill={quoteattr(SVG_COLOURS.get(bar.status, '#999999'))}{stroke}>"
        f"<title>{escape(tip)}</title></rect>"
    )
    return parts
