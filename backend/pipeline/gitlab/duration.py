"""GitLab's human durations (``timeout``, ``start_in``, ``expire_in``), as ChronicDuration reads.

GitLab parses these with the ``chronic_duration`` gem: a bare number is seconds (``"3600"``),
numbers take units written short or long (``1h 30m``, ``1h30m``, ``2 hours``, ``90 minutes``,
``1.5h``, ``3 days``), words ``and`` and commas are skipped (``1 hour and 30 minutes``), and
``1:30:00`` is hours:minutes:seconds. A month is 30 days and a year 365.25, as in the gem.
Unknown words are refused, as GitLab's ``raise_exceptions: true`` does.
"""

from __future__ import annotations

import re

_UNITS: dict[str, float] = {}
for _seconds, _names in (
    (1, ("s", "sec", "secs", "second", "seconds")),
    (60, ("m", "min", "mins", "minute", "minutes")),
    (3600, ("h", "hr", "hrs", "hour", "hours")),
    (86400, ("d", "day", "days")),
    (604800, ("w", "wk", "wks", "week", "weeks")),
    (2592000, ("mo", "mon", "mos", "mons", "month", "months")),
    (31557600, ("y", "yr", "yrs", "year", "years")),
):
    _UNITS.update(dict.fromkeys(_names, _seconds))

_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)")
_COLONS = re.compile(r"\d+(?::\d{1,2}){1,2}")
_SKIP = re.compile(r",|\band\b")


def parse_duration(value: object) -> float | None:
    """Seconds for a GitLab duration (a string or an integer), or None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 else None
    if not isinstance(value, str):
        return None
    text = _SKIP.sub(" ", value.strip().lower()).strip()
    if not text:
        return None
    if _COLONS.fullmatch(text):
        parts = [int(p) for p in text.split(":")]
        while len(parts) < 3:
            parts.insert(0, 0)
        return float(parts[0] * 3600 + parts[1] * 60 + parts[2])
    total = 0.0
    position = 0
    for match in _PART.finditer(text):
        if text[position : match.start()].strip():
            return None
        unit = match.group(2) or "s"
        if unit not in _UNITS:
            return None
        total += float(match.group(1)) * _UNITS[unit]
        position = match.end()
    if position == 0 or text[position:].strip():
        return None
    return total
