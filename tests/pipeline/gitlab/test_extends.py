"""extends: order of parents, deep merge, depth, cycles, unknown parents."""

from __future__ import annotations

import textwrap

from backend.pipeline.gitlab.extends import apply_extends
from backend.pipeline.gitlab.include import KEEP_TAGS
from backend.pipeline.gitlab.tree import plain
from backend.pipeline.loader import Map, parse_yaml


def extend(text: str) -> tuple[object, list[str]]:
    """The top level after extends, as plain values, and the problem lines."""
    root, problems = parse_yaml(textwrap.dedent(text).lstrip("\n"), "ci.yml", keep_tags=KEEP_TAGS)
    assert isinstance(root, Map) and problems == []
    top, found = apply_extends(root)
    return plain(top), [str(p) for p in found]


def test_apply_extends_single_parent_deep_merged():
    top, problems = extend(
        """
        .base:
          image: ruby
          variables: {A: base, B: base}
          script: [base]
        job:
          extends: .base
          variables: {B: job}
          script: [job]
        """
    )
    assert problems == []
    assert top["job"] == {  # type: ignore[index]
        "image": "ruby",
        "variables": {"A": "base", "B": "job"},
        "script": ["job"],
    }


def test_apply_extends_later_parent_overrides_earlier():
    top, problems = extend(
        """
        .a: {stage: a, image: a, variables: {X: a}}
        .b: {stage: b, variables: {Y: b}}
        job:
          extends: [.a, .b]
          script: x
        """
    )
    assert problems == []
    assert top["job"] == {  # type: ignore[index]
        "stage": "b",
        "image": "a",
        "variables": {"X": "a", "Y": "b"},
        "script": "x",
    }


def test_apply_extends_multi_level_and_hidden_entries_extended_too():
    top, problems = extend(
        """
        .one: {a: 1}
        .two: {extends: .one, b: 2}
        .three: {extends: .two, c: 3}
        job: {extends: .three, script: x}
        """
    )
    assert problems == []
    assert top["job"] == {"a": 1, "b": 2, "c": 3, "script": "x"}  # type: ignore[index]
    assert top[".three"] == {"a": 1, "b": 2, "c": 3}  # type: ignore[index]


def chain(levels: int) -> str:
    """A job on top of ``levels`` hidden entries, each extending the next."""
    lines = [f".l{i}: {{extends: .l{i + 1}}}" for i in range(1, levels)]
    lines.append(f".l{levels}: {{k: v}}")
    return "job: {extends: .l1, script: x}\n" + "\n".join(lines) + "\n"


def test_apply_extends_eleven_levels_allowed():
    top, problems = extend(chain(10))  # the job and ten ancestors
    assert problems == []
    assert top["job"] == {"k": "v", "script": "x"}  # type: ignore[index]


def test_apply_extends_last_ancestor_not_extending_is_not_counted():
    # GitLab counts ancestors only for an entry that itself extends (Extendable::Entry#extend!)
    top, problems = extend(chain(11))
    assert problems == []
    assert top["job"] == {"k": "v", "script": "x"}  # type: ignore[index]


def test_apply_extends_deeper_refused():
    _, problems = extend(chain(12))
    assert problems == ["ci.yml:11:17: '.l10': extends nests more than 11 levels"]


def test_apply_extends_circular_chain_refused():
    _, problems = extend(
        """
        .a: {extends: .b}
        .b: {extends: .c}
        .c: {extends: .a}
        job: {extends: .a, script: x}
        """
    )
    assert problems == ["ci.yml:3:15: '.c': circular dependency in extends: .a -> .b -> .c -> .a"]


def test_apply_extends_self_refused():
    _, problems = extend("job: {extends: job, script: x}\n")
    assert problems == ["ci.yml:1:16: 'job': circular dependency in extends: job -> job"]


def test_apply_extends_unknown_parent_suggests():
    top, problems = extend(
        """
        .template: {image: a}
        job:
          extends: .templat
          script: x
        """
    )
    assert problems == ["ci.yml:3:12: 'job' extends unknown '.templat' (did you mean '.template'?)"]
    assert top["job"] == {"script": "x"}  # type: ignore[index]


def test_apply_extends_null_or_empty_is_no_parent():
    top, problems = extend("a: {extends: null, script: x}\nb: {extends: [], script: y}\n")
    assert (top, problems) == ({"a": {"script": "x"}, "b": {"script": "y"}}, [])


def test_apply_extends_bad_values():
    _, problems = extend(
        """
        .list: [1]
        a: {extends: .list, script: x}
        b: {extends: [5], script: x}
        """
    )
    assert problems == [
        "ci.yml:2:14: 'a' extends '.list', which is a list, not a mapping",
        "ci.yml:3:15: 'b': extends must be a name or a list of names, not 5",
    ]
