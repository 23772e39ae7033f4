"""Hiding secret values in job output before it is stored, shown or sent to Prefect.

Every occurrence of every secret becomes ``****``. Where occurrences overlap or touch
(``abcdef`` and ``defghi`` in ``abcdefghi``) the whole covered stretch becomes one ``****``, so
no fragment of either leaks. Values are masked whatever their length: GitLab refuses to mask
values shorter than 8 characters, we mask any non-empty value instead, at the price of noisy logs
for very short ones (a secret ``1`` masks every ``1``). Values that are only whitespace are
ignored: masking every space would hide everything and protect nothing. A multi-line value is
masked whole in ``mask`` and, because logs are masked line by line, each of its lines of 4
characters or more is masked on its own too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

MASK = "****"
_MIN_LINE_OF_MULTILINE = 4


class Masker:
    """Replaces every occurrence of the given secret values in text with ``****``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        values: set[str] = set()
        for secret in secrets:
            if not secret or not secret.strip():
                continue
            values.add(secret)
            if "\n" in secret:
                values.update(
                    line
                    for raw in secret.splitlines()
                    if len(line := raw.strip()) >= _MIN_LINE_OF_MULTILINE
                )
        # Longest first, so at each position the lookahead finds the longest secret starting there.
        ordered = sorted(values, key=lambda v: (-len(v), v))
        self._pattern = (
            re.compile("(?=(" + "|".join(map(re.escape, ordered)) + "))") if ordered else None
        )
        # The same search over raw bytes, for the output reader, which cuts long lines before
        # they are decoded. A value's UTF-8 bytes start on a character boundary, so an occurrence
        # in the bytes is an occurrence in the decoded text, and the other way round.
        encoded = sorted({v.encode("utf-8") for v in values}, key=lambda v: (-len(v), v))
        self._byte_pattern = (
            re.compile(b"(?=(" + b"|".join(map(re.escape, encoded)) + b"))") if encoded else None
        )
        self.longest_bytes = max(map(len, encoded), default=0)
        """Length in UTF-8 bytes of the longest value masked (0 when there is none)."""

    def __bool__(self) -> bool:
        """True when there is anything to mask."""
        return self._pattern is not None

    def mask(self, text: str) -> str:
        """``text`` with every occurrence of every secret replaced by ``****``."""
        if self._pattern is None:
            return text
        spans = merge_spans((m.start(), m.end(1)) for m in self._pattern.finditer(text))
        if not spans:
            return text
        out: list[str] = []
        pos = 0
        for start, end in spans:
            out += (text[pos:start], MASK)
            pos = end
        out.append(text[pos:])
        return "".join(out)

    def byte_spans(self, data: bytes) -> list[tuple[int, int]]:
        """The ``(start, end)`` stretches of ``data`` that ``mask`` would hide, in order.

        Occurrences that overlap or touch make one stretch, as in ``mask``.
        """
        if self._byte_pattern is None:
            return []
        return merge_spans((m.start(), m.end(1)) for m in self._byte_pattern.finditer(data))

    def mask_lines(self, lines: Iterable[str]) -> Iterator[str]:
        """Each line of ``lines``, masked."""
        if self._pattern is None:
            yield from lines
            return
        for line in lines:
            yield self.mask(line)


def merge_spans(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """``spans`` sorted, with those that overlap or touch merged into one."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def hide_spans(data: bytes, spans: Iterable[tuple[int, int]]) -> bytes:
    """``data`` with each of the (sorted, disjoint) ``spans`` replaced by ``****``."""
    out: list[bytes] = []
    pos = 0
    for start, end in spans:
        out += (data[pos:start], MASK.encode())
        pos = end
    out.append(data[pos:])
    return b"".join(out)
