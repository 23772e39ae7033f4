"""GitLab CI/CD variable expressions, as written in ``rules: if:`` and ``only/except: variables:``.

    parse_expression(text) -> Expression       ExpressionError(message, column) if invalid
    Expression.evaluate(variables) -> bool

The grammar and the values follow GitLab's own implementation
(``lib/gitlab/ci/pipeline/expression/``: lexer.rb, parser.rb, lexeme/*.rb) rather than
an idealised reading of the docs, so that a file behaves here as it does on GitLab:

* Values are strings, ``null`` (an undefined variable is null too), booleans (from a
  comparison) and patterns. ``&&`` and ``||`` return one of their operands, with Ruby's
  truthiness: only null and false are false, so ``$EMPTY && $X`` is ``$X``. The whole
  expression is true when its value is neither null, false nor ``""`` (Ruby ``present?``).
  That is why ``if: $EMPTY`` is false but ``if: $EMPTY && $CI_COMMIT_BRANCH`` is true on a
  branch (gitlab-org/gitlab#321371); teams' files rely on GitLab's behaviour, bugs included.
* ``==``/``!=``/``=~``/``!~`` bind tighter than ``&&``, which binds tighter than ``||``;
  all are left-associative; parentheses group. Either side may be any value.
* Strings are ``"..."`` or ``'...'`` and end at the first matching quote: there are no
  escapes (a backslash is itself) and ``$VAR`` inside a string is not expanded.
* ``/pattern/flags`` (flags from ``imsU``) is RE2 syntax; ``\\/`` is a slash. As in
  GitLab's lexer the body needs two characters at least, so ``/./`` is refused.
* The right side of ``=~``/``!~`` may be a variable holding ``/pattern/flags`` (GitLab
  15.1+); one holding anything else is a plain string, and ``=~`` then asks whether the
  left side is a substring of it (GitLab's documented oddity: ``"23" =~ "1234"`` is true).
* Beyond GitLab: ``${VAR}`` is accepted as ``$VAR`` (GitLab refuses it in expressions).

Limits: 2,000 characters, 100 tokens (GitLab's own limit), parentheses 50 deep.
Patterns run on the linear-time matcher of ``regexp.py``, never on Python's ``re``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from backend.pipeline.gitlab.regexp import Regexp, RegexpError, compile_regexp

MAX_LENGTH = 2000
MAX_TOKENS = 100
MAX_DEPTH = 50

Value = str | bool | None | Regexp


class ExpressionError(ValueError):
    """An expression GitLab would refuse; ``column`` is 1-based within the expression."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(f"{message} (column {column})")
        self.message = message
        self.column = column


# --- lexer ------------------------------------------------------------------------------

# GitLab's lexeme patterns, tried in GitLab's order at the cursor (lexer.rb LEXEMES).
_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}", re.ASCII)
# Ruby's "." stops at a newline, so a string cannot span lines.
_STRING = re.compile(r'"(.*?)"|\'(.*?)\'')
# pattern.rb: at least two characters, "\/" is an escaped slash, then flags.
_PATTERN = re.compile(r"/(?:[^/]|\\/)+[^\\]/[ismU]*")
_OPERATORS = ("==", "=~", "!=", "!~", "&&", "||")
_SPACE = re.compile(r"\s+", re.ASCII)  # Ruby's \s: ASCII only


@dataclass(frozen=True)
class _Token:
    kind: str  # "(" ")" "var" "str" "re" "null" or an operator
    text: str
    column: int
    value: object = None


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while True:
        space = _SPACE.match(text, pos)
        if space:
            pos = space.end()
        if pos >= len(text):
            return tokens
        if len(tokens) == MAX_TOKENS:
            raise ExpressionError(f"more than {MAX_TOKENS} tokens", pos + 1)
        token = _next_token(text, pos)
        tokens.append(token)
        pos += len(token.text)


def _next_token(text: str, pos: int) -> _Token:
    column = pos + 1
    c = text[pos]
    if c in "()":
        return _Token(c, c, column)
    if c == "$":
        m = _VARIABLE.match(text, pos)
        if not m:
            raise ExpressionError("expected a variable name after '$'", column)
        return _Token("var", m.group(0), column, m.group(1) or m.group(2))
    if c in "\"'":
        m = _STRING.match(text, pos)
        if not m:
            raise ExpressionError("unterminated string", column)
        value = m.group(1) if m.group(1) is not None else m.group(2)
        return _Token("str", m.group(0), column, value)
    if c == "/":
        return _pattern_token(text, pos)
    if text.startswith("null", pos):
        return _Token("null", "null", column)
    for op in _OPERATORS:
        if text.startswith(op, pos):
            return _Token(op, op, column)
    raise ExpressionError(f"unexpected character {c!r}", column)


def _pattern_token(text: str, pos: int) -> _Token:
    column = pos + 1
    m = _PATTERN.match(text, pos)
    if not m:
        end = text.find("/", pos + 1)
        if end == pos + 1:
            raise ExpressionError("empty regular expression", column)
        if end == pos + 2:
            raise ExpressionError("a regular expression needs two characters at least", column)
        raise ExpressionError("unterminated regular expression", column)
    token = m.group(0)
    after = m.end()
    if after < len(text) and (text[after].isalnum() or text[after] == "_"):
        raise ExpressionError(f"unknown regular expression flag {text[after]!r}", after + 1)
    try:
        regexp = _build_pattern(token)
    except RegexpError as error:
        # The body starts one character after the opening slash.
        raise ExpressionError(
            f"invalid regular expression: {error.message}",
            column + 1 + _source_offset(token, error.offset),
        ) from None
    return _Token("re", token, column, regexp)


def _source_offset(token: str, body_offset: int) -> int:
    """Map an offset in the unescaped body back into the token (each ``\\/`` was 2 chars)."""
    source = token[1:]
    i = j = 0
    while j < body_offset and i < len(source):
        i += 2 if source.startswith("\\/", i) else 1
        j += 1
    return i


_RUBY_SYNTAX = re.compile(r"/(.*)/([ismU]*)")


def _build_pattern(text: str) -> Regexp:
    """GitLab's Pattern.build: unescape ``\\/``, split ``/body/flags``, compile RE2."""
    m = _RUBY_SYNTAX.fullmatch(text.replace("\\/", "/"))
    if not m:
        raise RegexpError("not a /pattern/", 0)
    return compile_regexp(m.group(1), m.group(2))


# --- syntax tree and evaluation ---------------------------------------------------------

Env = Mapping[str, str]


def _truthy(value: Value) -> bool:
    """Ruby truthiness: only nil and false are false (``""`` is true)."""
    return value is not None and value is not False


def _to_s(value: Value) -> str:
    """Ruby ``to_s`` of a value, used where GitLab matches a pattern against it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _matches(left: Value, right: Value) -> bool:
    """``=~`` as lexeme/matches.rb: false when the right side is null or false."""
    if not _truthy(right):
        return False
    if isinstance(right, str):
        try:
            pattern = _build_pattern(right)
        except RegexpError:
            # Not a /pattern/: GitLab's String#scan asks for a substring.
            return _to_s(left) in right
        return pattern.search(_to_s(left))
    if isinstance(right, bool):
        return _to_s(left) in _to_s(right)
    assert right is not None  # _truthy(None) is false
    return right.search(_to_s(left))


_BINARY: dict[str, Callable[[Value, Value], Value]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "=~": _matches,
    # not_matches.rb: true when the right side is null or false, else not =~.
    "!~": lambda a, b: not _matches(a, b),
}


@dataclass(frozen=True)
class _Node:
    kind: str  # "var" "str" "re" "null" "&&" "||" or a comparison operator
    value: object = None
    left: _Node | None = None
    right: _Node | None = None

    def value_in(self, env: Env) -> Value:
        kind = self.kind
        if kind == "var":
            return env.get(str(self.value))
        if kind in ("str", "re"):
            return self.value  # type: ignore[return-value]
        if kind == "null":
            return None
        assert self.left is not None and self.right is not None
        left = self.left.value_in(env)
        if kind == "&&":
            return self.right.value_in(env) if _truthy(left) else left
        if kind == "||":
            return left if _truthy(left) else self.right.value_in(env)
        return _BINARY[kind](left, self.right.value_in(env))


@dataclass(frozen=True)
class Expression:
    """A parsed expression; ``text`` is what was written."""

    text: str
    _tree: _Node

    def value(self, variables: Env) -> Value:
        """The raw value GitLab computes (a string, bool, None or pattern) before ``present?``."""
        return self._tree.value_in(variables)

    def evaluate(self, variables: Env) -> bool:
        """Whether the expression holds: its value is not null, false or ``""``."""
        value = self.value(variables)
        return value is not None and value is not False and value != ""

    def variable_names(self) -> frozenset[str]:
        """The variables the expression reads (for explaining a decision)."""
        names: set[str] = set()
        stack = [self._tree]
        while stack:
            node = stack.pop()
            if node.kind == "var":
                names.add(str(node.value))
            stack.extend(n for n in (node.left, node.right) if n is not None)
        return frozenset(names)


# --- parser -----------------------------------------------------------------------------

_VALUES = ("var", "str", "re", "null")
_COMPARISONS = ("==", "!=", "=~", "!~")


class _Parser:
    """Precedence climbing over GitLab's three levels: comparisons, ``&&``, ``||``."""

    def __init__(self, text: str, tokens: list[_Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def parse(self) -> _Node:
        node = self.binary(0)
        token = self.peek()
        if token is not None:
            if token.kind == ")":
                raise ExpressionError("unmatched ')'", token.column)
            raise ExpressionError(f"expected an operator, found {token.text!r}", token.column)
        return node

    _LEVELS: tuple[tuple[str, ...], ...] = (("||",), ("&&",), _COMPARISONS)

    def binary(self, level: int) -> _Node:
        if level == len(self._LEVELS):
            return self.operand()
        node = self.binary(level + 1)
        while (token := self.peek()) is not None and token.kind in self._LEVELS[level]:
            self.i += 1
            node = _Node(token.kind, left=node, right=self.binary_after(token, level + 1))
        return node

    def binary_after(self, operator: _Token, level: int) -> _Node:
        if self.peek() is None:
            raise ExpressionError(
                f"expected a value after {operator.text!r}", len(self.text.rstrip()) + 1
            )
        return self.binary(level)

    def operand(self) -> _Node:
        token = self.peek()
        if token is None:
            raise ExpressionError("expected a value", len(self.text.rstrip()) + 1)
        if token.kind in _VALUES:
            self.i += 1
            return _Node(token.kind, token.value)
        if token.kind == "(":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise ExpressionError(f"parentheses nested deeper than {MAX_DEPTH}", token.column)
            self.i += 1
            node = self.binary(0)
            close = self.peek()
            if close is None:
                raise ExpressionError("unclosed '('", token.column)
            if close.kind != ")":
                raise ExpressionError(f"expected an operator, found {close.text!r}", close.column)
            self.i += 1
            self.depth -= 1
            return node
        raise ExpressionError(f"expected a value, found {token.text!r}", token.column)


def parse_expression(text: str) -> Expression:
    """Parse a GitLab CI/CD variable expression; raise ``ExpressionError`` if it is invalid."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_LENGTH} characters", MAX_LENGTH + 1)
    tokens = _tokenize(text)
    if not tokens:
        raise ExpressionError("empty expression", 1)
    return Expression(text, _Parser(text, tokens).parse())
