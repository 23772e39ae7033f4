"""GitLab's ``only:``/``except:`` conditions: ref and pipeline-source keywords, and ``variables``.

    matches_refs(patterns, ref=, is_tag=, is_branch=, source=) -> bool
    matches_variables(expressions, variables) -> bool

Follows GitLab's ``lib/gitlab/ci/build/policy/refs.rb`` and ``variables.rb``. A ``refs``
entry matches when any of these holds:

* ``branches`` in a branch pipeline, ``tags`` in a tag pipeline;
* it names the pipeline source: the ``CI_PIPELINE_SOURCE`` value without its ``_event``
  suffix, or that pluralised (``push`` -> ``pushes``, ``merge_request_event`` ->
  ``merge_requests``, ``schedule`` -> ``schedules``), so ``api``, ``web`` and ``external``
  match as written; ``merge_requests`` also matches an ``external_merge_request`` source;
* in a branch or tag pipeline only, ``/regex/flags`` found anywhere in the ref (RE2,
  unanchored: use ``^`` and ``$``), or else the entry equal to the ref name.

A suffix ``@namespace/project`` restricts an entry to that project (GitLab uses it to keep
jobs off forks). The project is passed as ``project_path``; when it is unknown (None, a
local checkout) the suffix is ignored and the entry is judged by its ref part alone.
As in GitLab the split is at the first ``@``, so a regex matching ``@`` must write ``\\x40``.

A ``/regex/`` that RE2 accepts but this engine does not (``\\p{...}``) raises
``ExpressionError``: GitLab would compare such an entry literally, which silently never
matches; failing loudly is kinder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from backend.pipeline.gitlab.expressions import ExpressionError, parse_expression
from backend.pipeline.gitlab.regexp import RegexpError, compile_regexp

# What a job without only/except/rules gets (GitLab's default ``only``).
DEFAULT_ONLY = ("branches", "tags")

_RUBY_SYNTAX = re.compile(r"/(.*)/([ismU]*)", re.DOTALL)


def _pluralize(word: str) -> str:
    """English plural for GitLab's source names (Rails ``pluralize`` on these words)."""
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    return word + "s"


def _matches_source(pattern: str, source: str) -> bool:
    name = source.removesuffix("_event")
    if not name:
        return False
    if pattern in (name, _pluralize(name)):
        return True
    # GitLab reuses merge_requests for this source rather than a keyword of its own.
    return name == "external_merge_request" and pattern == "merge_requests"


def _matches_ref(pattern: str, ref: str) -> bool:
    m = _RUBY_SYNTAX.fullmatch(pattern)
    if m is None:
        return pattern == ref
    try:
        regexp = compile_regexp(m.group(1), m.group(2))
    except RegexpError as error:
        raise ExpressionError(
            f"only/except pattern {pattern!r}: {error.message}", error.offset + 2
        ) from None
    return regexp.search(ref)


def matches_refs(
    patterns: Sequence[str],
    *,
    ref: str,
    is_tag: bool,
    is_branch: bool,
    source: str,
    project_path: str | None = None,
) -> bool:
    """Whether any ``only:``/``except:`` refs entry matches this pipeline.

    ``ref`` is the branch or tag name (``CI_COMMIT_REF_NAME``), ``source`` the
    ``CI_PIPELINE_SOURCE`` value (``push``, ``merge_request_event``, ``schedule``...).
    """
    for entry in patterns:
        pattern, at, path = entry.partition("@")
        if at and project_path is not None and path != project_path:
            continue
        if is_tag and pattern == "tags":
            return True
        if is_branch and pattern == "branches":
            return True
        if _matches_source(pattern, source):
            return True
        # GitLab matches names and patterns in branch and tag pipelines only.
        if (is_branch or is_tag) and _matches_ref(pattern, ref):
            return True
    return False


def matches_variables(expressions: Sequence[str], variables: Mapping[str, str]) -> bool:
    """Whether any expression of an ``only/except: variables:`` list holds.

    Raises ``ExpressionError`` for an invalid expression (GitLab refuses the file).
    """
    parsed = [parse_expression(text) for text in expressions]  # all checked, even after a hit
    return any(expression.evaluate(variables) for expression in parsed)
