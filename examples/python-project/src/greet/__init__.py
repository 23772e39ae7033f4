"""Greetings, politely formatted."""

from __future__ import annotations

import sys


def greeting(name: str, shout: bool = False) -> str:
    """A greeting for ``name``; upper case when ``shout``."""
    text = f"Hello, {name.strip() or 'world'}!"
    return text.upper() if shout else text


def initials(name: str) -> str:
    """The initials of a full name: ``Ada Lovelace`` -> ``A.L.``."""
    return "".join(f"{part[0].upper()}." for part in name.split())


def main(argv: list[str] | None = None) -> int:
    """Console entry point: ``greet [--shout] NAME...``."""
    args = sys.argv[1:] if argv is None else argv
    shout = "--shout" in args
    names = [arg for arg in args if arg != "--shout"] or ["world"]
    for name in names:
        print(greeting(name, shout=shout))
    return 0
