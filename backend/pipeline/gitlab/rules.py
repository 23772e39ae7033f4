"""GitLab's ``rules:`` and ``only:``/``except:``: read with positions, then decided.

    read_rules(node, add, workflow=, ignore=) -> [Rule] | None
    first_match(rules, values, paths) -> (index, Rule) | None
    read_policy(node, key, add) -> Policy | None;  policy_matches(policy, ...) -> bool
    glob_regex(pattern) -> compiled ``rules:exists`` glob

Followed, from docs.gitlab.com/ci/yaml (``rules``, ``only / except``) and
``lib/gitlab/ci/build/rules/rule/clause/``:

* Rules are tried in order; the first whose clauses all hold decides (``when``, default
  ``on_success``, ``allow_failure``, ``variables``, ``needs``, ``start_in``); a rule without
  clauses always holds. No rule holding means the job is not added to the pipeline.
* ``if`` is a CI/CD expression (``expressions.py``), evaluated against the job's variables.
* ``exists`` globs are Ruby ``File.fnmatch`` with ``FNM_PATHNAME | FNM_DOTMATCH | FNM_EXTGLOB``
  (``**/`` any directories or none, ``*``/``?`` never cross ``/``, ``{a,b}``), over every file
  of the revision; variables in them are expanded, undefined ones left as written.
* ``changes``: GitLab compares with the push's previous commit, and holds the clause true
  "when there is no Git push event" or for a new branch (no previous commit). cicd runs with
  no base to compare, so every ``changes`` clause holds; ``front.py`` lists that as a note.
* ``only``/``except``: a list of refs, or ``{refs, variables, changes, kubernetes}``. A job
  is added when every key of ``only`` has a matching entry and not every key of ``except``
  has one ("evaluated as a single conjoined expression"). ``kubernetes: active`` never holds
  locally (no cluster integration).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from backend.pipeline.gitlab.expressions import Expression, ExpressionError, parse_expression
from backend.pipeline.gitlab.refs import matches_refs, matches_variables
from backend.pipeline.gitlab.variables import Variable, expand, read_variables
from backend.pipeline.loader import Map, Node, Scalar, Seq, describe
from backend.pipeline.validate import suggest

Add = Callable[[Node, str], None]
Ignore = Callable[[str], None]  # notes a keyword accepted without effect ("rules:exists:ref")

JOB_RULE_KEYS = (
    "if",
    "changes",
    "exists",
    "when",
    "allow_failure",
    "variables",
    "needs",
    "start_in",
    "interruptible",
)
WORKFLOW_RULE_KEYS = ("if", "changes", "exists", "when", "variables", "auto_cancel")
JOB_WHEN = ("on_success", "on_failure", "always", "manual", "delayed", "never")
WORKFLOW_WHEN = ("always", "never")
POLICY_KEYS = ("refs", "variables", "changes", "kubernetes")


@dataclass
class Rule:
    """One entry of ``rules:``; ``node`` is the entry, for positions."""

    node: Node
    condition: Expression | None = None
    exists: list[str] | None = None
    when: str | None = None
    allow_failure: bool | None = None
    variables: dict[str, Variable] = field(default_factory=dict)
    needs: Node | None = None
    start_in: Node | None = None
    interruptible: bool | None = None
    has_changes: bool = False


def strings(node: Node, what: str, add: Add) -> list[str] | None:
    """A string or a list of strings; None after reporting."""
    if isinstance(node, Scalar) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, Seq):
        result = []
        for item in node.items:
            if isinstance(item, Scalar) and isinstance(item.value, str):
                result.append(item.value)
            else:
                add(item, f"{what} entries must be strings, not {describe(item)}")
                return None
        return result
    add(node, f"{what} must be a string or a list of strings, not {describe(node)}")
    return None


def _paths_clause(node: Node, what: str, extra: tuple[str, ...], add: Add) -> list[str] | None:
    """``changes``/``exists``: a list of globs or ``{paths, ...}``."""
    if isinstance(node, Map):
        for key, _ in node.entries:
            if key.value == "project":
                add(key, f"{what}:project needs a GitLab server; cicd sees this repository only")
                return None
            if key.value not in ("paths", *extra):
                add(
                    key, f"unknown key '{key.text}' in {what}{suggest(key.text, ('paths', *extra))}"
                )
                return None
        paths = node.get("paths")
        if paths is None:
            add(node, f"{what} is missing required key 'paths'")
            return None
        node = paths
    if not isinstance(node, Seq):
        add(node, f"{what} must be a list of paths, not {describe(node)}")
        return None
    return strings(node, what, add)


def read_rules(node: Node, add: Add, *, workflow: bool, ignore: Ignore) -> list[Rule] | None:
    """The rules of a ``rules:`` list (job or ``workflow:``), or None after a problem.

    ``ignore`` is told of each key accepted without effect (``rules:exists:ref``), once per
    rule that writes it.
    """
    where = "workflow:rules" if workflow else "rules"
    if not isinstance(node, Seq):
        add(node, f"{where} must be a list of mappings, not {describe(node)}")
        return None
    allowed = WORKFLOW_RULE_KEYS if workflow else JOB_RULE_KEYS
    whens = WORKFLOW_WHEN if workflow else JOB_WHEN
    rules: list[Rule] = []
    ok = True
    for entry in node.items:
        if not isinstance(entry, Map):
            add(entry, f"{where} entries must be mappings, not {describe(entry)}")
            ok = False
            continue
        rule = Rule(entry)
        for key, value in entry.entries:
            name = key.value
            if name not in allowed:
                add(key, f"unknown key '{key.text}' in {where}{suggest(key.text, allowed)}")
                ok = False
            elif name == "if":
                if not (isinstance(value, Scalar) and isinstance(value.value, str)):
                    add(value, f"{where}:if must be a string, not {describe(value)}")
                    ok = False
                    continue
                try:
                    rule.condition = parse_expression(value.value)
                except ExpressionError as error:
                    add(value, f"invalid {where}:if expression: {error}")
                    ok = False
            elif name == "when":
                if not (isinstance(value, Scalar) and value.value in whens):
                    shown = ", ".join(whens)
                    add(value, f"{where}:when must be one of {shown}, not {describe(value)}")
                    ok = False
                else:
                    rule.when = str(value.value)
            elif name in ("allow_failure", "interruptible"):
                if not (isinstance(value, Scalar) and isinstance(value.value, bool)):
                    add(value, f"{where}:{name} must be true or false, not {describe(value)}")
                    ok = False
                else:
                    setattr(rule, name, value.value)
            elif name == "variables":
                definitions, found = read_variables(value, value.file or "", f"{where}:", job=True)
                for problem in found:
                    add(Scalar(problem.line, problem.column, file=problem.file), problem.message)
                ok = ok and not found
                rule.variables = definitions
            elif name == "exists":
                rule.exists = _paths_clause(value, f"{where}:exists", ("ref",), add)
                ok = ok and rule.exists is not None
                if isinstance(value, Map) and value.get("ref") is not None:
                    ignore("rules:exists:ref")
            elif name == "changes":
                rule.has_changes = True
                ok = (
                    ok
                    and _paths_clause(value, f"{where}:changes", ("compare_to",), add) is not None
                )
            elif name == "needs":
                rule.needs = value
            elif name == "start_in":
                rule.start_in = value
        rules.append(rule)
    return rules if ok else None


# -- exists: Ruby's File.fnmatch ----------------------------------------------------------


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Ruby ``File.fnmatch(pattern, path, FNM_PATHNAME | FNM_DOTMATCH | FNM_EXTGLOB)``."""
    out: list[str] = []
    i = 0
    depth = 0  # inside {a,b}
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:[^/]*/)*")
            i += 3
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            end = pattern.find("]", i + 2)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                negate = body[:1] in ("!", "^")
                body = body[1:] if negate else body
                body = body.replace("\\", "\\\\")
                out.append(f"[{'^/' if negate else ''}{body}]")
                i = end
        elif c == "{":
            depth += 1
            out.append("(?:")
        elif c == "}" and depth:
            depth -= 1
            out.append(")")
        elif c == "," and depth:
            out.append("|")
        else:
            out.append(re.escape(c))
        i += 1
    if depth:  # an unclosed brace is literal in Ruby: take the whole pattern literally
        return re.compile(re.escape(pattern))
    try:
        return re.compile("".join(out))
    except re.error:
        return re.compile(re.escape(pattern))


def exists_match(patterns: Iterable[str], values: Mapping[str, str], paths: Sequence[str]) -> bool:
    """Whether any file of ``paths`` matches one of the ``exists`` globs."""
    for pattern in patterns:
        regex = glob_regex(expand(pattern, values, keep_undefined=True).lstrip("/"))
        if any(regex.fullmatch(path) for path in paths):
            return True
    return False


def first_match(
    rules: Sequence[Rule], values: Mapping[str, str], paths: Callable[[], Sequence[str]]
) -> tuple[int, Rule] | None:
    """The first rule (1-based index) whose clauses all hold, or None."""
    for index, rule in enumerate(rules, start=1):
        if rule.condition is not None and not rule.condition.evaluate(values):
            continue
        if rule.exists is not None and not exists_match(rule.exists, values, paths()):
            continue
        return index, rule  # a changes clause holds: there is no base to compare with
    return None


# -- only / except -------------------------------------------------------------------------


@dataclass
class Policy:
    """One ``only:`` or ``except:``: the keys it sets (None: not set)."""

    refs: list[str] | None = None
    variables: list[str] | None = None
    changes: bool = False
    kubernetes: bool = False


def read_policy(node: Node, key: str, add: Add) -> Policy | None:
    """``only``/``except`` as a list of refs or a mapping; None after a problem."""
    if isinstance(node, Scalar | Seq):
        refs = strings(node, key, add)
        return None if refs is None else Policy(refs=refs)
    if not isinstance(node, Map):
        add(node, f"{key} must be a list of refs or a mapping, not {describe(node)}")
        return None
    policy = Policy()
    ok = True
    for entry_key, value in node.entries:
        name = entry_key.value
        if name not in POLICY_KEYS:
            add(
                entry_key,
                f"unknown key '{entry_key.text}' in {key}{suggest(entry_key.text, POLICY_KEYS)}",
            )
            ok = False
        elif name == "refs":
            policy.refs = strings(value, f"{key}:refs", add)
            ok = ok and policy.refs is not None
        elif name == "variables":
            policy.variables = strings(value, f"{key}:variables", add)
            if policy.variables is not None:
                for text, item in zip(policy.variables, _items(value), strict=False):
                    try:
                        parse_expression(text)
                    except ExpressionError as error:
                        add(item, f"invalid {key}:variables expression: {error}")
                        ok = False
            ok = ok and policy.variables is not None
        elif name == "changes":
            policy.changes = (
                _paths_clause(value, f"{key}:changes", ("compare_to",), add) is not None
            )
            ok = ok and policy.changes
        elif name == "kubernetes":
            if not (isinstance(value, Scalar) and value.value == "active"):
                add(value, f"{key}:kubernetes must be 'active', not {describe(value)}")
                ok = False
            policy.kubernetes = True
    return policy if ok else None


def _items(node: Node) -> list[Node]:
    return node.items if isinstance(node, Seq) else [node]


def policy_matches(
    policy: Policy,
    *,
    ref: str,
    is_tag: bool,
    is_branch: bool,
    source: str,
    values: Mapping[str, str],
    project_path: str | None = None,
) -> bool:
    """Whether every key the policy sets has a matching entry (GitLab's conjoined reading)."""
    if policy.refs is not None and not matches_refs(
        policy.refs,
        ref=ref,
        is_tag=is_tag,
        is_branch=is_branch,
        source=source,
        project_path=project_path,
    ):
        return False
    if policy.variables is not None and not matches_variables(policy.variables, values):
        return False
    return not policy.kubernetes  # no cluster integration here: 'active' never holds
