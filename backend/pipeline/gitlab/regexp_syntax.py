"""RE2 pattern syntax, parsed into a small tree for ``regexp.py`` to compile.

    parse_regexp(body, fold=, multiline=, dotall=) -> tree    RegexpError(message, offset)

The tree's nodes are tuples: ``("set", CharSet)`` ``("cat", [nodes])`` ``("alt", [nodes])``
``("rep", node, min, max|None)`` ``("assert", kind)`` ``("empty",)``. Capture groups and
greediness vanish: only whether a text matches is ever asked.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

MAX_REPEAT = 1000  # RE2's own bound on {n,m}
MAX_GROUP_DEPTH = 100
_MAX_CHAR = 0x10FFFF

Ranges = tuple[tuple[int, int], ...]

_DIGIT: Ranges = ((0x30, 0x39),)
_WORD: Ranges = ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A))
_SPACE: Ranges = ((0x09, 0x0A), (0x0C, 0x0D), (0x20, 0x20))  # RE2's \s has no \v
_POSIX: dict[str, Ranges] = {
    "alnum": ((0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)),
    "alpha": ((0x41, 0x5A), (0x61, 0x7A)),
    "ascii": ((0x00, 0x7F),),
    "blank": ((0x09, 0x09), (0x20, 0x20)),
    "cntrl": ((0x00, 0x1F), (0x7F, 0x7F)),
    "digit": _DIGIT,
    "graph": ((0x21, 0x7E),),
    "lower": ((0x61, 0x7A),),
    "print": ((0x20, 0x7E),),
    "punct": ((0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)),
    "space": ((0x09, 0x0D), (0x20, 0x20)),
    "upper": ((0x41, 0x5A),),
    "word": _WORD,
    "xdigit": ((0x30, 0x39), (0x41, 0x46), (0x61, 0x66)),
}
_SIMPLE_ESCAPES = {"a": 0x07, "f": 0x0C, "t": 0x09, "n": 0x0A, "r": 0x0D, "v": 0x0B}
_CLASS_ESCAPES: dict[str, tuple[Ranges, bool]] = {
    "d": (_DIGIT, False),
    "D": (_DIGIT, True),
    "s": (_SPACE, False),
    "S": (_SPACE, True),
    "w": (_WORD, False),
    "W": (_WORD, True),
}
FLAG_LETTERS = frozenset("imsU")


class RegexpError(ValueError):
    """A pattern RE2 would refuse, or one this engine does not support.

    ``offset`` is the 0-based index in the pattern body where it went wrong.
    """

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


# --- character sets ---------------------------------------------------------------------


def _normalize(ranges: list[tuple[int, int]]) -> Ranges:
    """Sorted, merged ranges."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return tuple(merged)


def _negate(ranges: Ranges) -> Ranges:
    """The complement of normalized ranges within all code points."""
    out: list[tuple[int, int]] = []
    nxt = 0
    for lo, hi in ranges:
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= _MAX_CHAR:
        out.append((nxt, _MAX_CHAR))
    return tuple(out)


@dataclass(frozen=True)
class CharSet:
    """A set of characters; with ``fold``, a character matches when any of its cases does."""

    ranges: Ranges
    negated: bool = False
    fold: bool = False
    _starts: tuple[int, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_starts", tuple(lo for lo, _ in self.ranges))

    def _contains(self, code: int) -> bool:
        i = bisect.bisect_right(self._starts, code) - 1
        return i >= 0 and code <= self.ranges[i][1]

    def matches(self, char: str) -> bool:
        """Whether ``char`` is in the set (RE2 folds case before negating)."""
        found = self._contains(ord(char))
        if not found and self.fold:
            found = any(
                len(other) == 1 and self._contains(ord(other))
                for other in (char.lower(), char.upper())
            )
        return found != self.negated


def is_word(text: str, i: int) -> bool:
    return 0 <= i < len(text) and (text[i].isascii() and (text[i].isalnum() or text[i] == "_"))


# --- syntax tree ------------------------------------------------------------------------


@dataclass
class _Flags:
    fold: bool = False  # i
    multiline: bool = False  # m: ^ and $ at line ends
    dotall: bool = False  # s: . matches \n

    def copy(self) -> _Flags:
        return _Flags(self.fold, self.multiline, self.dotall)


class _Parser:
    """Recursive descent over RE2 syntax; offsets in errors index the pattern body."""

    def __init__(self, body: str) -> None:
        self.s = body
        self.i = 0
        self.depth = 0

    def fail(self, message: str, offset: int | None = None) -> RegexpError:
        return RegexpError(message, self.i if offset is None else offset)

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.s[j] if j < len(self.s) else ""

    def parse(self, flags: _Flags) -> tuple:
        node = self.alternation(flags)
        if self.i < len(self.s):  # only a ")" stops an alternation early
            raise self.fail("unexpected )")
        return node

    def alternation(self, flags: _Flags) -> tuple:
        # Flags set by (?i) last to the end of the group, across later | branches too.
        flags = flags.copy()
        branches = [self.concatenation(flags)]
        while self.peek() == "|":
            self.i += 1
            branches.append(self.concatenation(flags))
        return branches[0] if len(branches) == 1 else ("alt", branches)

    def concatenation(self, flags: _Flags) -> tuple:
        items: list[tuple] = []
        while self.i < len(self.s) and self.peek() not in "|)":
            atom = self.atom(flags)
            if atom is None:  # a flag group such as (?i): changes flags, matches nothing
                continue
            items.append(self.quantified(atom))
        if not items:
            return ("empty",)
        return items[0] if len(items) == 1 else ("cat", items)

    def quantified(self, atom: tuple) -> tuple:
        repeated = False
        while True:
            start = self.i
            c = self.peek()
            if c in ("*", "+", "?"):
                self.i += 1
                bounds = {"*": (0, None), "+": (1, None), "?": (0, 1)}[c]
            elif c == "{" and (parsed := self.braces()) is not None:
                bounds = parsed
            else:
                return atom
            if repeated:
                raise self.fail(f"bad repetition operator: {self.s[start : self.i]}", start)
            if self.peek() == "?":  # lazy: the same set of texts match
                self.i += 1
            repeated = True
            atom = ("rep", atom, bounds[0], bounds[1])

    def braces(self) -> tuple[int, int | None] | None:
        """``{n}``, ``{n,}`` or ``{n,m}`` at the cursor, consumed; None (a literal ``{``) else."""
        start = self.i
        j = start + 1
        digits = ""
        while j < len(self.s) and self.s[j].isdigit() and self.s[j].isascii():
            digits += self.s[j]
            j += 1
        if not digits:
            return None
        low, high = int(digits), int(digits)
        if j < len(self.s) and self.s[j] == ",":
            j += 1
            more = ""
            while j < len(self.s) and self.s[j].isdigit() and self.s[j].isascii():
                more += self.s[j]
                j += 1
            high = int(more) if more else -1
        if j >= len(self.s) or self.s[j] != "}":
            return None
        self.i = j + 1
        if low > MAX_REPEAT or high > MAX_REPEAT or (high != -1 and high < low):
            raise self.fail(f"bad repetition operator: {self.s[start : self.i]}", start)
        return (low, None if high == -1 else high)

    def atom(self, flags: _Flags) -> tuple | None:
        start = self.i
        c = self.s[self.i]
        if c in "*+?":
            raise self.fail(f"missing argument to repetition operator: {c}")
        if c == "{" and self.braces() is not None:
            raise self.fail(
                f"missing argument to repetition operator: {self.s[start : self.i]}", start
            )
        self.i += 1
        if c == "(":
            return self.group(flags, start)
        if c == "[":
            return ("set", self.char_class(flags, start))
        if c == ".":
            ranges = ((0, _MAX_CHAR),) if flags.dotall else _negate(((0x0A, 0x0A),))
            return ("set", CharSet(ranges))
        if c == "^":
            return ("assert", "bol" if flags.multiline else "bot")
        if c == "$":
            return ("assert", "eol" if flags.multiline else "eot")
        if c == "\\":
            return self.escape(flags, start)
        return self.literal(ord(c), flags)

    def literal(self, code: int, flags: _Flags) -> tuple:
        return ("set", CharSet(((code, code),), fold=flags.fold))

    def group(self, flags: _Flags, start: int) -> tuple | None:
        self.depth += 1
        if self.depth > MAX_GROUP_DEPTH:
            raise self.fail(f"groups nested deeper than {MAX_GROUP_DEPTH}", start)
        inner_flags = flags
        if self.peek() == "?":
            self.i += 1
            if self.s.startswith("P<", self.i) or (
                self.peek() == "<" and self.peek(1) not in ("=", "!")
            ):
                self.named_group_name(start)
            elif (
                self.peek() in ("=", "!")
                or self.s.startswith("<=", self.i)
                or (self.s.startswith("<!", self.i))
            ):
                raise self.fail("look-around is not supported by RE2", start)
            elif self.s.startswith("P=", self.i):
                raise self.fail("backreferences are not supported by RE2", start)
            else:
                inner_flags = flags.copy()
                if self.flag_group(inner_flags, start):  # (?i) alone: for the rest of the group
                    flags.fold, flags.multiline, flags.dotall = (
                        inner_flags.fold,
                        inner_flags.multiline,
                        inner_flags.dotall,
                    )
                    self.depth -= 1
                    return None
        node = self.alternation(inner_flags)
        if self.peek() != ")":
            raise self.fail("missing closing )", start)
        self.i += 1
        self.depth -= 1
        return node

    def named_group_name(self, start: int) -> None:
        self.i += 2 if self.peek() == "P" else 1
        end = self.s.find(">", self.i)
        name = self.s[self.i : end] if end != -1 else ""
        if (
            end == -1
            or not name
            or not all(ch.isascii() and (ch.isalnum() or ch == "_") for ch in name)
        ):
            raise self.fail("invalid named capture group", start)
        self.i = end + 1

    def flag_group(self, flags: _Flags, start: int) -> bool:
        """Parse ``flags)`` or ``flags:`` after ``(?``; True for the ``)`` form."""
        negate = False
        seen = False
        while True:
            c = self.peek()
            if c in (")", ":"):
                # (?:re) needs no flag; (?) and a dangling "-" are errors.
                if (c == ")" and not seen) or (negate and self.s[self.i - 1] == "-"):
                    raise self.fail("missing or invalid flags in group", start)
                self.i += 1
                return c == ")"
            if c == "-" and not negate:
                negate = True
            elif c in FLAG_LETTERS:
                seen = True
                value = not negate
                if c == "i":
                    flags.fold = value
                elif c == "m":
                    flags.multiline = value
                elif c == "s":
                    flags.dotall = value
            else:
                raise self.fail("missing or invalid flags in group", start)
            self.i += 1

    def escape(self, flags: _Flags, start: int) -> tuple:
        if self.i >= len(self.s):
            raise self.fail("trailing \\", start)
        c = self.s[self.i]
        self.i += 1
        if c in "bB":
            return ("assert", "wordb" if c == "b" else "nwordb")
        if c == "A":
            return ("assert", "bot")
        if c == "z":
            return ("assert", "eot")
        if c == "Q":
            end = self.s.find("\\E", self.i)
            text = self.s[self.i :] if end == -1 else self.s[self.i : end]
            self.i = len(self.s) if end == -1 else end + 2
            nodes = [self.literal(ord(ch), flags) for ch in text]
            return ("cat", nodes) if nodes else ("empty",)
        if c in _CLASS_ESCAPES:
            ranges, negated = _CLASS_ESCAPES[c]
            return ("set", CharSet(_negate(ranges) if negated else ranges))
        return self.literal(self.escaped_code(c, start), flags)

    def escaped_code(self, c: str, start: int) -> int:
        """The code point of a one-character escape whose letter ``c`` is consumed."""
        if c in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[c]
        if c == "x":
            return self.hex_escape(start)
        if c in "01234567":
            digits = c
            while len(digits) < 3 and self.peek() != "" and self.peek() in "01234567":
                digits += self.peek()
                self.i += 1
            if c != "0" and len(digits) == 1:
                raise self.fail("backreferences are not supported by RE2", start)
            return int(digits, 8)
        if c in "pP":
            raise self.fail("Unicode classes such as \\p{...} are not supported", start)
        if c.isascii() and c.isalnum():
            raise self.fail(f"invalid escape sequence: \\{c}", start)
        return ord(c)

    def hex_escape(self, start: int) -> int:
        if self.peek() == "{":
            end = self.s.find("}", self.i)
            digits = self.s[self.i + 1 : end] if end != -1 else ""
            self.i = end + 1 if end != -1 else self.i
        else:
            digits = self.s[self.i : self.i + 2]
            self.i += 2
            if len(digits) != 2:
                raise self.fail("invalid escape sequence: \\x", start)
        try:
            code = int(digits, 16)
        except ValueError:
            raise self.fail("invalid escape sequence: \\x", start) from None
        if not digits.isascii() or code > _MAX_CHAR:
            raise self.fail("invalid escape sequence: \\x", start)
        return code

    def char_class(self, flags: _Flags, start: int) -> CharSet:
        negated = self.peek() == "^"
        if negated:
            self.i += 1
        ranges: list[tuple[int, int]] = []
        first = True
        while True:
            if self.i >= len(self.s):
                raise self.fail("missing closing ]", start)
            c = self.s[self.i]
            if c == "]" and not first:
                self.i += 1
                break
            first = False
            if c == "[" and self.peek(1) == ":":
                end = self.s.find(":]", self.i + 2)
                name = self.s[self.i + 2 : end] if end != -1 else ""
                inverse = name.startswith("^")
                if end == -1 or name.lstrip("^") not in _POSIX:
                    raise self.fail("invalid character class range", self.i)
                posix = _POSIX[name.lstrip("^")]
                ranges.extend(_negate(posix) if inverse else posix)
                self.i = end + 2
                continue
            if c == "\\" and self.peek(1) in _CLASS_ESCAPES:
                sub, neg = _CLASS_ESCAPES[self.s[self.i + 1]]
                ranges.extend(_negate(sub) if neg else sub)
                self.i += 2
                continue
            range_at = self.i
            lo = self.class_char(start)
            hi = lo
            if self.peek() == "-" and self.peek(1) not in ("]", ""):
                self.i += 1
                hi = self.class_char(start)
                if hi < lo:
                    raise self.fail("invalid character class range", range_at)
            ranges.append((lo, hi))
        return CharSet(_normalize(ranges), negated=negated, fold=flags.fold)

    def class_char(self, start: int) -> int:
        c = self.s[self.i]
        self.i += 1
        if c != "\\":
            return ord(c)
        if self.i >= len(self.s):
            raise self.fail("missing closing ]", start)
        letter = self.s[self.i]
        self.i += 1
        if letter in "bBAzQ":
            raise self.fail(f"invalid escape sequence: \\{letter}", self.i - 2)
        return self.escaped_code(letter, self.i - 2)


def parse_regexp(body: str, *, fold: bool, multiline: bool, dotall: bool) -> tuple:
    """Parse an RE2 pattern body under the given flags; raise ``RegexpError`` if refused."""
    return _Parser(body).parse(_Flags(fold, multiline, dotall))
