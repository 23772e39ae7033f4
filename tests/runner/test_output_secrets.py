"""Cutting long output lines (``LineSplitter``) without letting a secret through in pieces.

The recorder masks each line it is given; these tests give the splitter's pieces to the same
``Masker`` the recorder uses and look at what would be stored.
"""

from __future__ import annotations

import random
import re

import pytest

from backend.masking import Masker
from backend.runner.output import MAX_LINE_BYTES, LineSplitter

SECRET = "QWERTYUIOPASDFGH"  # no character of it is in the filler


def split(data: bytes, secrets: list[str], limit: int, chunk: int | None = None) -> list[bytes]:
    """The pieces the splitter emits for ``data`` fed in chunks of ``chunk`` bytes."""
    pieces: list[bytes] = []
    splitter = LineSplitter(pieces.append, Masker(secrets), limit)
    step = chunk or len(data) or 1
    for start in range(0, len(data), step):
        splitter.feed(data[start : start + step])
    splitter.close()
    return pieces


def stored(pieces: list[bytes], secrets: list[str]) -> list[str]:
    """The pieces as the recorder would store them: decoded, then masked."""
    return [Masker(secrets).mask(piece.decode("utf-8", errors="replace")) for piece in pieces]


def leaked_pieces(lines: list[str], secret: str, size: int = 8) -> list[str]:
    """Every ``size``-character stretch of ``secret`` found in ``lines``."""
    return [
        secret[i : i + size]
        for i in range(len(secret) - size + 1)
        if secret[i : i + size] in "\n".join(lines)
    ]


@pytest.mark.parametrize("chunk", [1, 7, 4096, 65536])
def test_line_splitter_secret_straddling_cut_is_masked(chunk: int) -> None:
    # no newline: the line is still going when it passes the limit, so it must be cut
    line = b"x" * (MAX_LINE_BYTES - 8) + SECRET.encode() + b"y" * 100
    lines = stored(split(line, [SECRET], MAX_LINE_BYTES, chunk), [SECRET])
    assert leaked_pieces(lines, SECRET) == []
    assert len(lines) == 2
    assert "".join(lines) == "x" * (MAX_LINE_BYTES - 8) + "****" + "y" * 100
    assert all(len(text) <= MAX_LINE_BYTES for text in lines)


def test_line_splitter_secret_still_arriving_at_cut_is_masked() -> None:
    # the line passes the limit before the secret's second half has been read
    pieces: list[bytes] = []
    splitter = LineSplitter(pieces.append, Masker([SECRET]), limit=32)
    splitter.feed(b"x" * 28 + SECRET[:8].encode())
    splitter.feed(SECRET[8:].encode() + b"y" * 40 + b"\n")
    lines = stored(pieces, [SECRET])
    assert leaked_pieces(lines, SECRET, 4) == []
    assert "".join(lines) == "x" * 28 + "****" + "y" * 40


def test_line_splitter_line_that_is_all_secret_is_masked_in_every_piece() -> None:
    # overlapping occurrences make one stretch longer than the limit: it is cut, all masked
    lines = stored(split(b"a" * 100 + b"\n", ["aa"], limit=16, chunk=5), ["aa"])
    assert len(lines) > 1
    assert all(set(text) == {"*"} for text in lines)


def test_line_splitter_secret_longer_than_limit_is_masked_in_every_piece() -> None:
    secret = "S" * 40
    line = b"x" * 10 + secret.encode() + b"x" * 10 + b"\n"
    lines = stored(split(line, [secret], limit=16, chunk=3), [secret])
    assert re.sub(r"(\*\*\*\*)+", "****", "".join(lines)) == "x" * 10 + "****" + "x" * 10
    assert all(len(text) <= 16 for text in lines)


def test_line_splitter_without_secrets_cuts_at_limit() -> None:
    data = bytes(random.Random(1).choice(b"abc ") for _ in range(100))
    assert split(data + b"\nend", [], limit=16, chunk=9) == [
        data[i : i + 16] for i in range(0, 100, 16)
    ] + [b"end"]


def test_line_splitter_never_cuts_inside_a_character() -> None:
    text = "é€😀" * 50  # 2-, 3- and 4-byte characters
    pieces = split(text.encode() + b"\n", [], limit=17, chunk=5)
    assert "".join(piece.decode("utf-8") for piece in pieces) == text  # strict: no half characters
    assert all(len(piece) <= 17 for piece in pieces)


def test_line_splitter_random_lines_store_as_masking_whole_lines_would() -> None:
    rng = random.Random(14)
    for _ in range(400):
        secrets = ["".join(rng.choice("abc") for _ in range(rng.randint(2, 9))) for _ in range(2)]
        line = "".join(rng.choice(["x", "y", "-", *secrets]) for _ in range(rng.randint(1, 60)))
        limit, chunk = rng.randint(4, 20), rng.randint(1, 12)
        lines = stored(split(line.encode() + b"\n", secrets, limit, chunk), secrets)
        squeeze = re.compile(r"(\*\*\*\*)+")  # touching masks read the same as one
        assert squeeze.sub("*", "".join(lines)) == squeeze.sub("*", Masker(secrets).mask(line)), (
            secrets,
            line,
            limit,
            chunk,
            lines,
        )
