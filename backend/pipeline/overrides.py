"""``--override KEY=VALUE``: change a key of the file for one run, before validation.

Overrides are applied to the positioned YAML tree, so the overridden file is validated like any
other; a value an override set is reported as ``override 'KEY=VALUE': <problem>`` at the position
of the node it replaced. Keys that can be overridden::

    pipeline.image   pipeline.name   pipeline.variables.NAME
    jobs.JOB.image   jobs.JOB.script   jobs.JOB.stage   jobs.JOB.allow_failure
    jobs.JOB.timeout   jobs.JOB.retry   jobs.JOB.variables.NAME

VALUE is read as a YAML 1.2 scalar: ``true``/``false`` are booleans, ``5`` an integer, ``null`` or
nothing is null, a quoted string is unquoted and a flow list ``[a, b]`` is a list; anything else
is taken verbatim as a string (so ``echo hi # note`` keeps its ``#``).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

from backend.errors import PipelineInvalid, Problem
from backend.pipeline.loader import MAX_FILE_BYTES, Map, MiB, Node, Scalar, Seq, parse_yaml

JOB_FIELDS = ("image", "script", "stage", "allow_failure", "timeout", "retry")
OVERRIDABLE = (
    "pipeline.image",
    "pipeline.name",
    "pipeline.variables.NAME",
    *(f"jobs.JOB.{name}" for name in JOB_FIELDS),
    "jobs.JOB.variables.NAME",
)


@dataclass(frozen=True)
class Override:
    """One ``KEY=VALUE`` override as given on the command line."""

    key: str
    value: str

    @property
    def raw(self) -> str:
        """``KEY=VALUE`` as given."""
        return f"{self.key}={self.value}"

    @property
    def shown(self) -> str:
        """``KEY=VALUE`` as it appears in messages: cut short, so a message stays one line."""
        return shorten(self.raw)


SHOWN_LENGTH = 60


def shorten(text: str) -> str:
    """``text``, or its first ``SHOWN_LENGTH`` characters and ``...`` when it is longer."""
    return text if len(text) <= SHOWN_LENGTH else text[: SHOWN_LENGTH - 3] + "..."


class _TooDeep(Exception):
    """An override's value nests deeper than the YAML parser allows."""


def parse_override(text: str) -> Override | None:
    """Split ``KEY=VALUE`` (the first ``=`` separates); None when there is no key."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        return None
    return Override(key.strip(), value)


def value_node(text: str, raw: str, line: int, col: int) -> Node:
    """The node an override's VALUE stands for, placed at ``line:col`` and marked as ``raw``.

    Raises ``_TooDeep`` for a value nested deeper than YAML allows (``[[[[...``).
    """
    node: Node = Scalar(line, col, value=text, text=text)
    stripped = text.strip()
    if stripped == "" or stripped[0] in "[\"'":
        node = _parsed(stripped, line, col) or node
    else:
        parsed = _parsed(stripped, line, col)
        if isinstance(parsed, Scalar) and not isinstance(parsed.value, str):
            node = parsed
    _mark(node, raw, line, col)
    return node


def _parsed(text: str, line: int, col: int) -> Node | None:
    if text == "":
        return Scalar(line, col, value=None, text="")
    try:
        root, problems = parse_yaml(text, "<override>")
    except PipelineInvalid as exc:
        # too deep is no typo to keep verbatim: it is refused, in one line
        if any("nesting depth" in problem.message for problem in exc.problems):
            raise _TooDeep from None
        return None
    if problems or root is None or isinstance(root, Map):
        return None
    return root


def _mark(node: Node, raw: str, line: int, col: int) -> None:
    # a loop, not recursion: a value may nest as deep as the parser allows (1000 levels)
    todo = [node]
    while todo:
        current = todo.pop()
        current.line, current.col, current.override = line, col, raw
        if isinstance(current, Seq):
            todo.extend(current.items)


def apply_overrides(
    root: Node | None, overrides: Sequence[str], filename: str
) -> tuple[dict[str, str], list[Problem]]:
    """Apply ``overrides`` in order to the tree; return those applied and the problems found.

    A file too broken to hold the key (no top-level mapping, ``pipeline`` or ``jobs`` of the wrong
    type) is left to validation to report.
    """
    applied: dict[str, str] = {}
    problems: list[Problem] = []
    # what a file may hold, overrides may: a server takes them from any API caller
    if sum(len(text) for text in overrides) > MAX_FILE_BYTES:
        message = f"overrides add up to more than {MAX_FILE_BYTES // MiB} MiB, the limit"
        return applied, [Problem(filename, 1, 1, message)]
    for text in overrides:
        override = parse_override(text)
        if override is None:
            message = (
                f"override '{shorten(text)}': expected KEY=VALUE, e.g. pipeline.image=alpine:3.20"
            )
            problems.append(Problem(filename, 1, 1, message))
            continue
        error = _apply(root, override)
        if error is None:
            applied[override.key] = override.value
        elif error:
            problems.append(Problem(filename, 1, 1, f"override '{override.shown}': {error}"))
    return applied, problems


def _apply(root: Node | None, override: Override) -> str | None:
    """Apply one override; an error message, ``""`` when the file cannot hold it, None if done."""
    key = override.key
    if not isinstance(root, Map):
        return ""
    if key.startswith("pipeline."):
        field = key[len("pipeline.") :]
        if field not in ("image", "name") and not _variable(field):
            return _unknown(key)
        target = root.get("pipeline")
        if not isinstance(target, Map):
            return ""
        return _set(target, field, override)
    if key.startswith("jobs."):
        jobs = root.get("jobs")
        if not isinstance(jobs, Seq):
            return ""
        names = _job_names(jobs)
        split = _split_job_key(key[len("jobs.") :], names)
        if split is None:
            return _unknown(key)
        name, field = split
        targets = [job for job in jobs.items if isinstance(job, Map) and _name_of(job) == name]
        if not targets:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            return f"no job named '{name}'{hint}"
        for job in targets:
            error = _set(job, field, override)
            if error is not None:
                return error
        return None
    return _unknown(key)


def _variable(field: str) -> bool:
    return field.startswith("variables.") and len(field) > len("variables.")


def _name_of(job: Map) -> str | None:
    node = job.get("name")
    return node.value if isinstance(node, Scalar) and isinstance(node.value, str) else None


def _job_names(jobs: Seq) -> list[str]:
    return [name for job in jobs.items if isinstance(job, Map) and (name := _name_of(job))]


def _split_job_key(rest: str, names: Sequence[str]) -> tuple[str, str] | None:
    """``JOB.FIELD`` -> (JOB, FIELD); job names may contain dots, so try every split."""
    splits = []
    for i, char in enumerate(rest):
        if char != ".":
            continue
        name, field = rest[:i], rest[i + 1 :]
        if name and (field in JOB_FIELDS or _variable(field)):
            splits.append((name in names, len(name), name, field))
    if not splits:
        return None
    _, _, name, field = max(splits)
    return name, field


def _set(mapping: Map, field: str, override: Override) -> str | None:
    """Set ``field`` (``x`` or ``variables.X``) of ``mapping`` to the override's value."""
    if field.startswith("variables."):
        variables = mapping.get("variables")
        if variables is None:
            variables = Map(mapping.line, mapping.col, override=override.shown)
            mapping.set(
                Scalar(mapping.line, mapping.col, value="variables", text="variables"), variables
            )
        if not isinstance(variables, Map):
            return f"'variables' at line {variables.line} is not a mapping"
        return _set(variables, field[len("variables.") :], override)
    old = mapping.get(field)
    where = old if old is not None else mapping
    key = mapping.key_node(field) or Scalar(
        where.line, where.col, value=field, text=field, override=override.shown
    )
    try:
        value = value_node(override.value, override.shown, where.line, where.col)
    except _TooDeep:
        return "its value nests deeper than YAML allows (1000 levels)"
    mapping.set(key, value)
    return None


def _unknown(key: str) -> str:
    head, _, last = key.rpartition(".")
    fields = JOB_FIELDS if key.startswith("jobs.") else ("image", "name")
    close = difflib.get_close_matches(last, fields, n=1)
    hint = f" (did you mean '{head}.{close[0]}'?)" if close and head else ""
    return f"cannot override '{key}'{hint}; overridable keys are {', '.join(OVERRIDABLE)}"
