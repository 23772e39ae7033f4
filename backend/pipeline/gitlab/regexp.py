"""GitLab's regular expressions (RE2 syntax), matched in time linear in the text.

GitLab matches ``=~`` patterns and ``only:``/``except:`` ref patterns with RE2, whose
engine never backtracks. Python's ``re`` backtracks, so ``/(a+)+$/`` against a long
commit message would hang the pipeline planner. Every GitLab caller only asks *whether*
a pattern matches somewhere (``scan(...).present?``, ``match?``), never for the match
itself, so this module parses the RE2 syntax into a Thompson NFA and simulates it:
O(len(text) × len(program)) whatever the pattern. Greediness (``*?``, the ``U`` flag)
and capture groups do not change whether a match exists, so they are parsed and ignored.

    compile_regexp(body, flags) -> Regexp     RegexpError(message, offset) if refused
    Regexp.search(text) -> bool               a match anywhere in text

The syntax itself is parsed in ``regexp_syntax.py``.

Refused, although RE2 accepts them: Unicode classes (``\\p{Greek}``, ``\\pN``) and ``\\C``.
Refused as RE2 refuses them: backreferences, look-around, possessive quantifiers,
``(?x)`` and other flags than ``imsU``, repeat counts above 1000.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from backend.pipeline.gitlab.regexp_syntax import (
    FLAG_LETTERS,
    RegexpError,
    is_word,
    parse_regexp,
)

__all__ = ["Regexp", "RegexpError", "compile_regexp"]

MAX_PROGRAM = 20_000  # instructions; {1000}{1000} would otherwise expand to a million

# --- program and simulation -------------------------------------------------------------


def _size(node: tuple) -> int:
    kind = node[0]
    if kind == "cat":
        return sum(_size(n) for n in node[1])
    if kind == "alt":
        return sum(_size(n) for n in node[1]) + 2 * len(node[1])
    if kind == "rep":
        inner = _size(node[1]) + 2
        low, high = node[2], node[3]
        return inner * max(1, low if high is None else high) + inner
    return 1


class _Compiler:
    """Thompson construction: ("char", set) ("split", a, b) ("jmp", a) ("assert", k) ("match",)."""

    def __init__(self) -> None:
        self.prog: list[list] = []

    def emit(self, *inst: object) -> int:
        self.prog.append(list(inst))
        return len(self.prog) - 1

    def node(self, node: tuple) -> None:
        kind = node[0]
        if kind == "set":
            self.emit("char", node[1])
        elif kind == "assert":
            self.emit("assert", node[1])
        elif kind == "cat":
            for child in node[1]:
                self.node(child)
        elif kind == "alt":
            jumps = []
            branches = node[1]
            for child in branches[:-1]:
                split = self.emit("split", len(self.prog) + 1, None)
                self.node(child)
                jumps.append(self.emit("jmp", None))
                self.prog[split][2] = len(self.prog)
            self.node(branches[-1])
            for j in jumps:
                self.prog[j][1] = len(self.prog)
        elif kind == "rep":
            _, child, low, high = node
            for _ in range(low):
                self.node(child)
            if high is None:
                split = self.emit("split", len(self.prog) + 1, None)
                self.node(child)
                self.emit("jmp", split)
                self.prog[split][2] = len(self.prog)
            else:
                splits = []
                for _ in range(high - low):
                    splits.append(self.emit("split", len(self.prog) + 1, None))
                    self.node(child)
                for s in splits:
                    self.prog[s][2] = len(self.prog)
        # "empty" emits nothing


@dataclass(frozen=True, eq=False)
class Regexp:
    """A compiled GitLab pattern: ``/body/flags`` as written."""

    body: str
    flags: str
    _program: tuple = field(repr=False)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Regexp) and (self.body, self.flags) == (other.body, other.flags)

    def __hash__(self) -> int:
        return hash((self.body, self.flags))

    def __str__(self) -> str:
        return f"/{self.body}/{self.flags}"

    def search(self, text: str) -> bool:
        """Whether the pattern matches anywhere in ``text`` (linear in ``len(text)``)."""
        prog = self._program
        n = len(text)
        current: list[int] = []
        for i in range(n + 1):
            waiting: list[int] = []
            # Program counter 0 joins at every position: the search is unanchored.
            if _closure(prog, text, i, [*current, 0], waiting):
                return True
            if i == n:
                break
            char = text[i]
            current = [pc + 1 for pc in waiting if prog[pc][1].matches(char)]
        return False


def _closure(prog: tuple, text: str, i: int, starts: list[int], out: list[int]) -> bool:
    """Follow jumps, splits and assertions at position ``i``; True when a match is reached.

    ``out`` receives the "char" instructions that wait for ``text[i]``.
    """
    stack = list(reversed(starts))
    seen: set[int] = set()
    while stack:
        pc = stack.pop()
        if pc in seen:
            continue
        seen.add(pc)
        inst = prog[pc]
        op = inst[0]
        if op == "char":
            out.append(pc)
        elif op == "match":
            return True
        elif op == "jmp":
            stack.append(inst[1])
        elif op == "split":
            stack.append(inst[2])
            stack.append(inst[1])
        elif _holds(inst[1], text, i):
            stack.append(pc + 1)
    return False


def _holds(kind: str, text: str, i: int) -> bool:
    n = len(text)
    if kind == "bot":
        return i == 0
    if kind == "eot":
        return i == n
    if kind == "bol":
        return i == 0 or text[i - 1] == "\n"
    if kind == "eol":
        return i == n or text[i] == "\n"
    boundary = is_word(text, i - 1) != is_word(text, i)
    return boundary if kind == "wordb" else not boundary


@functools.lru_cache(maxsize=512)
def compile_regexp(body: str, flags: str = "") -> Regexp:
    """Compile an RE2 pattern body with GitLab's ``/.../flags`` letters (``imsU``).

    Raises ``RegexpError`` for syntax RE2 refuses and for the few constructs refused here.
    """
    for offset, letter in enumerate(flags):
        if letter not in FLAG_LETTERS:
            raise RegexpError(f"unknown flag {letter!r}", len(body) + 1 + offset)
    tree = parse_regexp(body, fold="i" in flags, multiline="m" in flags, dotall="s" in flags)
    if _size(tree) > MAX_PROGRAM:
        raise RegexpError("regular expression too large", 0)
    compiler = _Compiler()
    compiler.node(tree)
    compiler.emit("match")
    return Regexp(body, flags, tuple(tuple(inst) for inst in compiler.prog))
