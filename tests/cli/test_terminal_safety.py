"""Job output reaches the terminal with its colours and without any other control sequence.

``safe_text`` on its own, then ``cicd logs`` and ``cicd artifacts`` through the real console
script on a fabricated history (the live output of ``cicd run``: tests/e2e/test_output_safety.py).
"""

from __future__ import annotations

import subprocess

import pytest
from fabricate import CICD, COMMIT_1, Cicd, History, Job, Run, Stage, cli_env

from backend.schemas import Status
from cicd_cli.terminal import job_text, safe_text

# a clipboard write (OSC 52), a screen clear, a cursor move, a title change, an 8-bit CSI,
# a terminal reset and a backspace, around visible text and a colour (a carriage return is a
# line break to the log reader: see test_safe_text_drops_every_control_sequence)
HOSTILE = (
    "A\x1b]52;c;ZXZpbA==\x07B\x1b[2JC\x1b[1;1HD\x1b]0;title\x07E\x9b31mF"
    "\x1b[31mred\x1b[0mG\x1bcH\x08I"
)
VISIBLE = "ABCDEFredGHI"
COLOURED = "ABCDEF\x1b[31mred\x1b[0mGHI"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (HOSTILE, VISIBLE),
        ("a\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\b", "alinkb"),  # hyperlink
        ("a\x1bP+q544e\x1b\\b", "ab"),  # DCS (a terminfo query)
        ("a\x9d0;title\x9cb", "ab"),  # 8-bit OSC ended by 8-bit ST
        ("a\x1b]0;never ended", "a"),  # an OSC with no end hides nothing after the line
        ("a\x1b[?1049hb\x1b[6nc", "abc"),  # alternate screen, cursor position report
        ("a\x1b7b\x1b(Bc\x1b", "abc"),  # two-character escapes and a lone ESC
        ("job\rspoofed", "jobspoofed"),  # a carriage return would overwrite the job's name
        ("tab\tkept\x00\x7f\x85", "tab\tkept"),  # NUL, DEL and NEL go, tab stays
        ("é€😀 plain", "é€😀 plain"),
    ],
)
def test_safe_text_drops_every_control_sequence(text: str, shown: str) -> None:
    assert safe_text(text) == shown


def test_safe_text_colour_keeps_only_sgr() -> None:
    assert safe_text(HOSTILE, colour=True) == COLOURED
    assert safe_text("\x1b[1;38;5;200mx\x1b[m", colour=True) == "\x1b[1;38;5;200mx\x1b[m"
    assert safe_text("\x9b31mx", colour=True) == "x"  # 8-bit CSI: terminals disagree; dropped


def test_job_text_turns_colours_into_styles() -> None:
    text = job_text(HOSTILE)
    assert text.plain == VISIBLE
    assert [(s.start, s.end, str(s.style)) for s in text.spans] == [(6, 9, "color(1)")]


@pytest.fixture
def hostile(history: History) -> Run:
    """evil#1: a job whose log holds HOSTILE and whose artifact has an escape in its name."""
    job = Job(
        "term",
        "busybox",
        Status.SUCCESS,
        1,
        5,
        0,
        log=[(2, HOSTILE)],
        artifacts={"dist/\x1b]0;pwned\x07\x1b[2Jout.txt": b"data\n"},
    )
    run = Run(
        "evil", Status.SUCCESS, COMMIT_1, "main", start=0, end=6,
        stages=[Stage("build", Status.SUCCESS, start=1, end=5, jobs=[job])],
    )  # fmt: skip
    return history.record(run)


def test_logs_hostile_line_shows_text_only_without_colour(cicd: Cicd, hostile: Run) -> None:
    result = cicd("logs", "evil#1", "--job", "term", "--no-timestamps")
    assert (result.returncode, result.stdout, result.stderr) == (0, VISIBLE + "\n", "")


def test_logs_hostile_line_keeps_colour_only_with_colour(history: History, hostile: Run) -> None:
    env = {k: v for k, v in cli_env(history.home).items() if k != "NO_COLOR"}
    env["FORCE_COLOR"] = "1"
    result = subprocess.run(
        [str(CICD), "logs", "evil#1", "--job", "term", "--no-timestamps"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (result.returncode, result.stdout, result.stderr) == (0, COLOURED + "\n", "")


def test_logs_every_job_hostile_line_prefixed_and_safe(cicd: Cicd, hostile: Run) -> None:
    result = cicd("logs", "evil#1", "--no-timestamps")
    assert (result.returncode, result.stdout) == (0, f"term | {VISIBLE}\n")


def test_artifacts_hostile_file_name_listed_without_controls(cicd: Cicd, hostile: Run) -> None:
    result = cicd("artifacts", "evil#1")
    assert result.returncode == 0, result.stderr
    assert "dist/out.txt" in result.stdout
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout


def test_report_names_with_brackets_shown_verbatim_not_as_markup(
    cicd: Cicd, history: History
) -> None:
    # GitLab's parallel jobs are named "test: [1/3]" or "test: [plain]"; rich would read the
    # brackets as markup and print "test:" (and a name could restyle the whole table)
    jobs = [
        Job("test: [plain]", "busybox", Status.SUCCESS, 1, 2, 0),
        Job("[bold red]x[/]", "busybox", Status.SUCCESS, 1, 2, 0),
    ]
    run = Run(
        "brackets", Status.SUCCESS, COMMIT_1, "main", start=0, end=3,
        stages=[Stage("[test]", Status.SUCCESS, start=1, end=2, jobs=jobs)],
    )  # fmt: skip
    history.record(run)
    by_run = ("report", "-p", "brackets", "--run", "1")
    for args in (by_run, (*by_run, "--job", "test: [plain]")):
        result = cicd(*args)
        assert result.returncode == 0, result.stderr
        assert "test: [plain]" in result.stdout, result.stdout
    listing = cicd(*by_run).stdout
    assert "[bold red]x[/]" in listing and "[test]" in listing, listing
