"""Drawing a timeline: the markdown of the Prefect artifact and the SVG keep names as text."""

from __future__ import annotations

from defusedxml import ElementTree

from backend.schemas import Status
from backend.timeline import Bar, Timeline
from backend.timeline_render import to_markdown, to_svg

HOSTILE = "x | y ``` <img src=z> [l](http://e) *b*"


def _timeline() -> Timeline:
    bars = [
        Bar("a", "build", Status.SUCCESS, 0.0, 1.0, ready=0.0, critical=True),
        Bar(HOSTILE, "build", Status.FAILED, 1.5, 3.0, ready=1.0, waited_for="a", critical=True),
    ]
    return Timeline("p#2", Status.FAILED, 3.0, [("build", bars)], ["a", HOSTILE])


def test_to_markdown_hostile_name_stays_in_its_cell_and_fence() -> None:
    text = to_markdown(_timeline())
    lines = text.splitlines()
    fence = next(line for line in lines if line.startswith("```"))
    assert fence == "````text"  # longer than the name's own backticks
    assert lines.count("````") == 1
    rows = [line for line in lines if line.startswith("| build |")]
    assert len(rows) == 2
    assert all(row.count("|") == 9 for row in rows)  # no cell split by the name's |
    assert "<img" not in text.split("````")[-1]  # outside the fence: no raw HTML
    assert "[l](" not in text.split("````")[-1]
    assert f"critical path: a -> {HOSTILE}" in lines  # inside the fence, as it is


def test_to_svg_hostile_name_is_text() -> None:
    root = ElementTree.fromstring(to_svg(_timeline()).encode())
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert HOSTILE[:31] + "…" in texts  # a row's label is cut; its bar's tooltip is whole
    titles = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert titles[0] == "p#2"
    assert any(title.startswith(f"{HOSTILE}: FAILED") for title in titles)
    assert f"critical path: a -> {HOSTILE}" in texts
    assert not list(root.iter("{http://www.w3.org/2000/svg}img"))
