"""Making job output safe to print on the user's terminal.

A job writes what it likes, and its lines reach the terminal of whoever runs ``cicd run`` or
``cicd logs``. Control sequences there can move the cursor, clear the screen, rewrite the
window title, reset the terminal (``ESC c``) or write the clipboard (OSC 52). Only colours and
text attributes (SGR, ``ESC [ ... m``) are let through, and only when the output has colour;
every other escape sequence (ECMA-48: CSI, OSC, DCS, SOS, PM, APC and two-character escapes, in
their 7-bit and 8-bit C1 forms) is removed whole, as are the other C0 and C1 control
characters, tab excepted. Stored logs keep what the job wrote, as GitLab does: they are made safe
where they are shown.

No library fits: rich's ``Text.from_ansi`` reads an OSC ended by BEL as running on to the next
ST, swallowing the visible text in between, and keeps OSC 8 hyperlinks; plain ``Text`` passes
every sequence through.
"""

from __future__ import annotations

import re

from rich.ansi import AnsiDecoder
from rich.console import Console
from rich.text import Text

_CONTROL = re.compile(
    r"""
    (?P<csi>(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e])  # CSI: cursor, erase, SGR, ...
    | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]).*?(?:\x07|\x1b\\|\x9c|\Z)  # OSC, DCS, SOS, PM, APC
    | \x1b[\x20-\x2f]*[\x30-\x7e]?  # two-character escapes (ESC c, ESC 7, ESC ( B), a lone ESC
    | [\x00-\x08\x0a-\x1f\x7f-\x9f]  # every other C0 and C1 control but tab
    """,
    re.VERBOSE | re.DOTALL,
)
_SGR = re.compile(r"\x1b\[[0-9;:]*m")


def safe_text(text: str, colour: bool = False) -> str:
    """``text`` without control sequences or characters; colours (SGR) kept when ``colour``."""

    def keep(match: re.Match[str]) -> str:
        sequence = match.group(0)
        return sequence if colour and match.group("csi") and _SGR.fullmatch(sequence) else ""

    return _CONTROL.sub(keep, text)


def job_text(text: str) -> Text:
    """A line a job wrote as rich ``Text``: its colours as styles, every other control dropped.

    Rich then prints the colours only on a console that has colour.
    """
    return AnsiDecoder().decode_line(safe_text(text, colour=True))


def has_colour(console: Console) -> bool:
    """True when ``console`` prints colours (a terminal, or FORCE_COLOR; not NO_COLOR)."""
    return console.color_system is not None and not console.no_color
