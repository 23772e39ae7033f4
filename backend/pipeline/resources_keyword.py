"""The native format's ``resources:`` (docs/pipeline-format.md): a job's CPU and memory limits.

``resources: {cpus: 1.5, memory: 512m}``: ``cpus`` a number of CPUs (Docker's ``--cpus``, at
least 0.01), ``memory`` bytes as an integer or a size with a unit (``512m``, ``1g``, ``1.5g``,
``256Mi``; units are powers of 1024, as Docker reads them), at least Docker's minimum of 6 MiB.
Docker enforces both; the container cannot swap beyond the memory limit. GitLab files have no
such keyword (their ``KUBERNETES_*`` variables are ignored: docs/gitlab.md).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable

from backend.pipeline.loader import Map, Node, Scalar, describe
from backend.pipeline.model import Resources

RESOURCE_KEYS = ("cpus", "memory")
MIN_CPUS = 0.01  # Docker's smallest --cpus
MAX_CPUS = 1024.0
MIN_MEMORY = 6 * 1024 * 1024  # Docker refuses a smaller --memory
MAX_MEMORY = 1024**5  # 1 PiB: beyond any machine; keeps the number an int64
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}
_SIZE = re.compile(r"(\d{1,20}(?:\.\d{1,9})?)\s*([kmgtp]?)(?:ib?|b)?", re.IGNORECASE)

Add = Callable[[Node, str], None]


def parse_memory(value: object) -> int | None:
    """Bytes for ``536870912``, ``512m``, ``1.5g``, ``256Mi``, ``1GiB``; None when not a size."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        return None
    match = _SIZE.fullmatch(value.strip())
    if match is None:
        return None
    number, unit = match.group(1), match.group(2).lower()
    return int(float(number) * _UNITS[unit]) if "." in number else int(number) * _UNITS[unit]


def read_resources(node: Node, label: str, add: Add) -> Resources | None:
    """The limits ``node`` (a job's ``resources:``) sets; each problem goes to ``add``."""
    what = f"{label}: 'resources"
    if not isinstance(node, Map):
        example = "{cpus: 1.5, memory: 512m}"
        add(node, f"{what}' must be a mapping like {example}, not {describe(node)}")
        return None
    problems = 0
    fields: dict[str, object] = {}
    for key, value in node.entries:
        name = key.value
        if name not in RESOURCE_KEYS:
            close = difflib.get_close_matches(str(name), RESOURCE_KEYS, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            add(key, f"unknown key '{key.text}' in {what}' (allowed: cpus, memory){hint}")
            problems += 1
        elif name == "cpus":
            cpus = _cpus(value)
            if cpus is None:
                add(
                    value,
                    f"{what}:cpus' must be a number of CPUs from {MIN_CPUS:g} to "
                    f"{MAX_CPUS:g}, like 1.5, not {describe(value)}",
                )
                problems += 1
            else:
                fields["cpus"] = cpus
        else:
            written = value.value if isinstance(value, Scalar) else None
            size = parse_memory(written)
            if size is None or not MIN_MEMORY <= size <= MAX_MEMORY:
                too = ""
                if size is not None:
                    too = " (at least 6m, Docker's minimum)"
                    too = too if size < MIN_MEMORY else " (at most 1p)"
                add(
                    value,
                    f"{what}:memory' must be a size like 512m or 2g{too}, not {describe(value)}",
                )
                problems += 1
            else:
                fields["memory"] = size
                shown = written.strip() if isinstance(written, str) else memory_text(size)
                fields["memory_text"] = shown
    return None if problems else Resources(**fields)  # type: ignore[arg-type]


def _cpus(node: Node) -> float | None:
    value = node.value if isinstance(node, Scalar) else None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and MIN_CPUS <= number <= MAX_CPUS else None


def memory_text(size: int) -> str:
    """``64m``, ``1.5g``, ``1000b``: a byte count as a limit is written."""
    for unit in ("p", "t", "g", "m", "k"):
        factor = _UNITS[unit]
        if size >= factor and (size * 10) % factor == 0:
            return f"{size / factor:g}{unit}"
    return f"{size}b"
