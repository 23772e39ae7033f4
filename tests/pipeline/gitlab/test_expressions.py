"""GitLab CI/CD variable expressions: values, precedence, patterns, errors, and fuzzing.

Rows marked "spec" are taken from GitLab's own statement_spec.rb with the same variables.
"""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.pipeline.gitlab.expressions import (
    MAX_LENGTH,
    ExpressionError,
    parse_expression,
)
from backend.pipeline.gitlab.regexp import compile_regexp

GITLAB_SPEC_VARIABLES = {
    "PRESENT_VARIABLE": "my variable",
    "PATH_VARIABLE": "a/path/variable/value",
    "FULL_PATH_VARIABLE": "/a/full/path/variable/value",
    "EMPTY_VARIABLE": "",
}
V = {
    **GITLAB_SPEC_VARIABLES,
    "BRANCH": "main",
    "DEFAULT": "main",
    "OTHER": "develop",
    "TAG": "v1.2.3",
    "MSG": "Fix: crash\n\nskip-e2e please",
    "PATTERN": "/^ab.*/",
    "PATTERN_I": "/^AB/i",
    "NOT_A_PATTERN": "abcde",
    "ONE_CHAR_PATTERN": "/./",
    "TEXT": "abcde",
    "QUOTED": 'say "hi"',
    "BACKSLASH": "a\\b",
    "AT": "feature@x",
    "DOLLAR": "$HOME",
}

CASES = [
    # a variable alone: defined and non-empty
    ("$BRANCH", V, True),
    ("$EMPTY_VARIABLE", V, False),
    ("$UNDEFINED", V, False),
    ("${BRANCH}", V, True),
    ("${UNDEFINED}", V, False),
    ('"text"', V, True),
    ('""', V, False),
    ("null", V, False),
    # == and !=
    ('$BRANCH == "main"', V, True),
    ("$BRANCH == 'main'", V, True),
    ('$BRANCH == "Main"', V, False),
    ('"main" == $BRANCH', V, True),
    ("$BRANCH == $DEFAULT", V, True),
    ("$BRANCH == $OTHER", V, False),
    ('$BRANCH != "main"', V, False),
    ("$BRANCH != $OTHER", V, True),
    ("${BRANCH} == $DEFAULT", V, True),
    # null, undefined and empty (spec)
    ("$PRESENT_VARIABLE == null", V, False),
    ("$EMPTY_VARIABLE == null", V, False),
    ('$EMPTY_VARIABLE == ""', V, True),
    ("$UNDEFINED == null", V, True),
    ("null == $UNDEFINED", V, True),
    ('$UNDEFINED == ""', V, False),
    ("$UNDEFINED != null", V, False),
    ("$EMPTY_VARIABLE != null", V, True),
    ('$UNDEFINED != ""', V, True),
    ("null == null", V, True),
    ("$UNDEFINED == $ALSO_UNDEFINED", V, True),
    # =~ and !~ with literal patterns (spec)
    ("$PRESENT_VARIABLE =~ /var.*e$/", V, True),
    ("$PRESENT_VARIABLE =~ /^var.*/", V, False),
    ("$PRESENT_VARIABLE =~ /VAR.*/i", V, True),
    ("$PRESENT_VARIABLE =~ /VAR.*/", V, False),
    ("$EMPTY_VARIABLE =~ /var.*/", V, False),
    ("$UNDEFINED =~ /var.*/", V, False),
    ("$PRESENT_VARIABLE !~ /var.*e$/", V, False),
    ("$PRESENT_VARIABLE !~ /^var.*/", V, True),
    ("$UNDEFINED !~ /var.*/", V, True),
    ("$PRESENT_VARIABLE !~ /VAR.*/i", V, False),
    (r"$PATH_VARIABLE =~ /path\/variable/", V, True),
    (r"$FULL_PATH_VARIABLE =~ /^\/a\/full\/path\/variable\/value$/", V, True),
    (r"$PRESENT_VARIABLE =~ /va\/r.*e$/", V, False),
    # pattern syntax: RE2 classes, anchors, repetition, flags
    (r"$TAG =~ /^v\d+\.\d+\.\d+$/", V, True),
    (r"$TAG =~ /^v\d+$/", V, False),
    ("$TAG =~ /^v[0-9]{1,3}[.]/", V, True),
    ("$TAG =~ /^v[[:digit:]]/", V, True),
    ("$BRANCH =~ /^(main|master)$/", V, True),
    ("$OTHER =~ /^(main|master)$/", V, False),
    ("$MSG =~ /skip-e2e/", V, True),
    ("$MSG =~ /^skip/", V, False),
    ("$MSG =~ /^skip/m", V, True),
    ("$MSG =~ /crash.skip/", V, False),
    ("$MSG =~ /crash..skip/s", V, True),
    ("$MSG =~ /crash$/", V, False),
    (r"$AT =~ /\x40x$/", V, True),
    (r"$BRANCH =~ /\bmain\b/", V, True),
    ("$BRANCH =~ /(?i)MAIN/", V, True),
    ("$BRANCH =~ /ma*?in/U", V, True),
    ("$BRANCH =~ /x*/", V, True),  # an empty match is a match (scan is not empty)
    # a variable on the right of =~ holding a pattern (GitLab 15.1+)
    ("$TEXT =~ $PATTERN", V, True),
    ("$OTHER =~ $PATTERN", V, False),
    ("$TEXT !~ $PATTERN", V, False),
    ("$TEXT =~ $PATTERN_I", V, True),
    ("$TEXT =~ $ONE_CHAR_PATTERN", V, True),
    # ... holding anything else: GitLab asks whether the left side is a substring of it
    ('"23" =~ "1234"', V, True),
    ('"1234" =~ "23"', V, False),
    ("$TEXT =~ $NOT_A_PATTERN", V, True),
    ('"bcd" =~ $NOT_A_PATTERN', V, True),
    ("$TEXT =~ $UNDEFINED", V, False),
    ("$TEXT !~ $UNDEFINED", V, True),
    ("$TEXT =~ null", V, False),
    # strings: no escapes, no expansion, either quote holds the other
    ('$DOLLAR == "$HOME"', V, True),
    ("$QUOTED == 'say \"hi\"'", V, True),
    ('$BACKSLASH == "a\\b"', V, True),
    ('"it\'s" == "it\'s"', V, True),
    ('"$BRANCH" == "main"', V, False),
    # && and || return an operand, Ruby truthiness, present? at the end (spec)
    ('$PRESENT_VARIABLE && "string"', V, True),
    ("$PRESENT_VARIABLE && $EMPTY_VARIABLE", V, False),
    ("$EMPTY_VARIABLE && $PRESENT_VARIABLE", V, True),
    ("$PRESENT_VARIABLE && null", V, False),
    ("$UNDEFINED && $PRESENT_VARIABLE", V, False),
    ("$UNDEFINED || $PRESENT_VARIABLE", V, True),
    ("$EMPTY_VARIABLE || $UNDEFINED", V, False),
    ("$UNDEFINED || $EMPTY_VARIABLE", V, False),
    ('$EMPTY_VARIABLE == "" && $PRESENT_VARIABLE != "nope"', V, True),
    ("$PRESENT_VARIABLE =~ /my var/ && $EMPTY_VARIABLE =~ /nope/", V, False),
    # precedence: comparisons, then &&, then ||; left-associative
    ('$BRANCH == "main" || $BRANCH == "x" && $OTHER == "x"', V, True),
    ('($BRANCH == "main" || $BRANCH == "x") && $OTHER == "x"', V, False),
    ('$BRANCH == "x" && $OTHER == "x" || $TAG', V, True),
    ('$BRANCH == "x" && ($OTHER == "x" || $TAG)', V, False),
    ('$PRESENT_VARIABLE && null || $EMPTY_VARIABLE == ""', V, True),
    ('("string" == "test" || "string")', V, True),
    ('("string" == ("test" && "string"))', V, True),
    ('("string" == ("test" || "string"))', V, False),
    ('("string" || "test") == "string"', V, True),
    ('("string" == ("string" || (("1" == "1") && ("2" == "3"))))', V, True),
    ('"a" == "a" == "b"', V, False),
    ('$UNDEFINED == null == "x" || "y" == "y"', V, True),
    # parentheses
    ("($PRESENT_VARIABLE)", V, True),
    ("(($EMPTY_VARIABLE))", V, False),
    ('(($PRESENT_VARIABLE && null) || $EMPTY_VARIABLE == "")', V, True),
    ('(null || ("test" == "string"))', V, False),
    ('  $BRANCH   ==  "main"  ', V, True),
    ('$BRANCH=="main"&&$TAG', V, True),
    # variables are case-sensitive
    ("$branch", V, False),
    ("$BRANCH", {}, False),
]


@pytest.mark.parametrize(("expression", "variables", "expected"), CASES)
def test_evaluate_table(expression: str, variables: dict[str, str], expected: bool) -> None:
    assert parse_expression(expression).evaluate(variables) is expected


def test_value_and_returns_an_operand_as_gitlab() -> None:
    assert parse_expression('$A && "x"').value({"A": ""}) == "x"
    assert parse_expression("$A || $B").value({"B": "b"}) == "b"
    assert parse_expression("$A && $B").value({"B": "b"}) is None


def test_variable_names_lists_what_is_read() -> None:
    expression = parse_expression('($A == "x" || ${B}) && $C =~ $D')
    assert expression.variable_names() == frozenset({"A", "B", "C", "D"})


ERRORS = [
    ("", "empty expression", 1),
    ("   ", "empty expression", 1),
    ("$A ==", "expected a value after '=='", 6),
    ("$A == ", "expected a value after '=='", 6),
    ('== "x"', "expected a value, found '=='", 1),
    ("$A $B", "expected an operator, found '$B'", 4),
    ('$A == "x" "y"', "expected an operator, found '\"y\"'", 11),
    ("$A && || $B", "expected a value, found '||'", 7),
    ("($A", "unclosed '('", 1),
    ("$A)", "unmatched ')'", 3),
    ("()", "expected a value, found ')'", 2),
    ("($A $B)", "expected an operator, found '$B'", 5),
    ("$A = 1", "unexpected character '='", 4),
    ("!$A", "unexpected character '!'", 1),
    ("$A == true", "unexpected character 't'", 7),
    ("$A & $B", "unexpected character '&'", 4),
    ("$", "expected a variable name after '$'", 1),
    ("${A", "expected a variable name after '$'", 1),
    ("$A == 'x", "unterminated string", 7),
    ('$A == "x\ny"', "unterminated string", 7),
    ("$A =~ //", "empty regular expression", 7),
    ("$A =~ /./", "a regular expression needs two characters at least", 7),
    ("$A =~ /abc", "unterminated regular expression", 7),
    ("$A =~ /ab/x", "unknown regular expression flag 'x'", 11),
    ("$A =~ /a(b/", "invalid regular expression: missing closing )", 9),
    ("$A =~ /ab)/", "invalid regular expression: unexpected )", 10),
    ("$A =~ /[ab/", "invalid regular expression: missing closing ]", 8),
    (r"$A =~ /\/[z-a]/", "invalid regular expression: invalid character class range", 11),
    ("$A =~ /*a/", "invalid regular expression: missing argument to repetition operator: *", 8),
    ("$A =~ /a**/", "invalid regular expression: bad repetition operator: *", 10),
    ("$A =~ /a++/", "invalid regular expression: bad repetition operator: +", 10),
    ("$A =~ /a{2,1}/", "invalid regular expression: bad repetition operator: {2,1}", 9),
    ("$A =~ /a{1001}/", "invalid regular expression: bad repetition operator: {1001}", 9),
    (r"$A =~ /(a)\1/", "invalid regular expression: backreferences are not supported by RE2", 11),
    ("$A =~ /^(?!main)/", "invalid regular expression: look-around is not supported by RE2", 9),
    ("$A =~ /(?<=a)b/", "invalid regular expression: look-around is not supported by RE2", 8),
    ("$A =~ /(?x)ab/", "invalid regular expression: missing or invalid flags in group", 8),
    (
        r"$A =~ /\pL+/",
        "invalid regular expression: Unicode classes such as \\p{...} are not supported",
        8,
    ),
    (r"$A =~ /a\q/", "invalid regular expression: invalid escape sequence: \\q", 9),
    (r"$A =~ /a\Z/", "invalid regular expression: invalid escape sequence: \\Z", 9),
    ("$A =~ /((((a)/", "invalid regular expression: missing closing )", 10),
    ("(" * 51 + "$A", "parentheses nested deeper than 50", 51),
    ("$A || " * 50 + "$A", "more than 100 tokens", 301),
    ("$" + "A" * MAX_LENGTH, f"expression longer than {MAX_LENGTH} characters", MAX_LENGTH + 1),
]


@pytest.mark.parametrize(("expression", "message", "column"), ERRORS)
def test_parse_expression_error_table(expression: str, message: str, column: int) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_expression(expression)
    assert (caught.value.message, caught.value.column) == (message, column)
    assert str(caught.value) == f"{message} (column {column})"
    assert "\n" not in str(caught.value)


def test_parse_expression_at_the_limits_is_accepted() -> None:
    assert parse_expression("(" * 49 + "$A" + ")" * 49).evaluate({"A": "x"}) is True
    assert parse_expression("$A || " * 49 + "$A").evaluate({"A": "x"}) is True  # 99 tokens
    assert parse_expression("$" + "A" * (MAX_LENGTH - 1)).evaluate({}) is False


def test_evaluate_pathological_pattern_returns_quickly() -> None:
    expression = parse_expression("$TEXT =~ /(a+)+$/")
    text = "a" * 20_000 + "!"
    start = time.perf_counter()
    assert expression.evaluate({"TEXT": text}) is False
    assert expression.evaluate({"TEXT": "a" * 20_000}) is True
    assert time.perf_counter() - start < 1.0


def test_evaluate_pathological_pattern_from_a_variable_returns_quickly() -> None:
    expression = parse_expression("$TEXT =~ $PATTERN")
    variables = {"TEXT": "x" * 5_000 + "y", "PATTERN": "/^(x|x)*(x*)*z$/"}
    start = time.perf_counter()
    assert expression.evaluate(variables) is False
    assert time.perf_counter() - start < 1.0


def test_evaluate_invalid_pattern_in_a_variable_is_a_plain_string() -> None:
    expression = parse_expression("$TEXT =~ $PATTERN")
    assert expression.evaluate({"TEXT": "(a", "PATTERN": "/(a/"}) is True  # a substring
    assert expression.evaluate({"TEXT": "b", "PATTERN": "/(a/"}) is False


# --- fuzzing ----------------------------------------------------------------------------

_ALPHABET = st.sampled_from(list("$(){}\"'/\\=~!&|nul ABx_.*+?[]^-:0 \n\t@é"))


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=_ALPHABET, max_size=60) | st.text(max_size=40))
def test_parse_expression_arbitrary_text_raises_only_expression_error(text: str) -> None:
    try:
        expression = parse_expression(text)
    except ExpressionError as error:
        assert 1 <= error.column <= len(text) + 1
        assert "\n" not in error.message
    else:
        assert isinstance(expression.evaluate({"A": "x", "B": ""}), bool)


_PATTERN_BODIES = st.sampled_from(
    ["^ab", "a.*b$", "(x|y)+", r"\d{2,}", "[[:alpha:]]+", "[^a-z]", "(?i)AB", r"\bz"]
)
_NAMES = st.sampled_from(["A", "B", "C", "UNDEFINED"])


def _leaf() -> st.SearchStrategy[str]:
    return st.one_of(
        _NAMES.map(lambda n: f"${n}"),
        _NAMES.map(lambda n: "${" + n + "}"),
        st.text(alphabet="abxy $", max_size=5).map(lambda s: f'"{s}"'),
        st.text(alphabet='abxy "', max_size=5).map(lambda s: f"'{s}'"),
        st.just("null"),
        st.tuples(_PATTERN_BODIES, st.sampled_from(["", "i", "m", "s", "im"])).map(
            lambda p: f"/{p[0]}/{p[1]}"
        ),
    )


_EXPRESSIONS = st.recursive(
    _leaf(),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["==", "!=", "=~", "!~", "&&", "||"]), inner).map(
            lambda t: f"{t[0]} {t[1]} {t[2]}"
        ),
        inner.map(lambda e: f"({e})"),
    ),
    max_leaves=12,
)
_VALUES = st.dictionaries(
    _NAMES, st.one_of(st.text(alphabet="abxy/^.*", max_size=8), st.just("/^ab/")), max_size=4
)


@settings(max_examples=400, deadline=None)
@given(_EXPRESSIONS, _VALUES)
def test_evaluate_generated_valid_expressions_without_error(
    text: str, variables: dict[str, str]
) -> None:
    assert isinstance(parse_expression(text).evaluate(variables), bool)


# Patterns on which RE2 and Python's re agree (no \s, no "$" before a final newline):
# the linear-time matcher must say "matches" exactly when re.search does.
_RE_ATOMS = st.sampled_from(["a", "b", ".", "[ab]", "[^a]", r"\d", "(?:a|b1)", "(a|)", "x"])
_RE_QUANT = st.sampled_from(["", "", "*", "+", "?", "{2}", "{1,2}", "{0,}", "*?", "+?"])
_RE_PIECES = st.lists(st.tuples(_RE_ATOMS, _RE_QUANT).map("".join), min_size=1, max_size=5)
_RE_BRANCH = st.tuples(st.sampled_from(["", "^"]), _RE_PIECES, st.sampled_from(["", "$"])).map(
    lambda t: t[0] + "".join(t[1]) + t[2]
)
_RE_BODIES = st.lists(_RE_BRANCH, min_size=1, max_size=3).map("|".join)


@settings(max_examples=500, deadline=None)
@given(_RE_BODIES, st.text(alphabet="ab1x", max_size=12), st.booleans())
def test_regexp_search_agrees_with_python_re(body: str, text: str, fold: bool) -> None:
    flags = "i" if fold else ""
    expected = re.search(body, text, re.IGNORECASE if fold else 0) is not None
    assert compile_regexp(body, flags).search(text) is expected
