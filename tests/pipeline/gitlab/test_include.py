"""include: of local files: forms, wildcards, nesting, merge order, limits, refusals."""

from __future__ import annotations

import textwrap

from backend.pipeline.gitlab.include import (
    MAX_INCLUDES,
    DictSource,
    load_config,
    wildcard_regex,
)
from backend.pipeline.gitlab.tree import plain

MAIN = ".gitlab-ci.yml"
SERVER = "needs a GitLab server; cicd includes local files only"


def load(files: dict[str, str]) -> tuple[object, list[str]]:
    """The merged configuration as plain values, and the problem lines."""
    source = DictSource({p: textwrap.dedent(t).lstrip("\n") for p, t in files.items()})
    top, problems = load_config(MAIN, source)
    return plain(top), [str(p) for p in problems]


def test_load_config_include_string():
    top, problems = load({MAIN: "include: a.yml\nb: 1\n", "a.yml": "a: 1\n"})
    assert (top, problems) == ({"a": 1, "b": 1}, [])


def test_load_config_include_list_of_strings_and_local_maps():
    top, problems = load(
        {
            MAIN: "include: [a.yml, {local: /b.yaml}, {local: c.YML}]\n",
            "a.yml": "a: 1\n",
            "b.yaml": "b: 1\n",
            "c.YML": "c: 1\n",
        }
    )
    assert (top, problems) == ({"a": 1, "b": 1, "c": 1}, [])


def test_load_config_include_single_local_map():
    top, problems = load({MAIN: "include: {local: a.yml}\n", "a.yml": "a: 1\n"})
    assert (top, problems) == ({"a": 1}, [])


def test_load_config_including_file_overrides_and_deep_merges():
    top, problems = load(
        {
            MAIN: """
                include: base.yml
                job:
                  variables: {B: own}
                  script: [own]
            """,
            "base.yml": """
                job:
                  stage: test
                  variables: {A: base, B: base}
                  script: [base1, base2]
            """,
        }
    )
    assert problems == []
    assert top == {
        "job": {"stage": "test", "variables": {"A": "base", "B": "own"}, "script": ["own"]}
    }


def test_load_config_later_include_overrides_earlier():
    top, problems = load({MAIN: "include: [a.yml, b.yml]\n", "a.yml": "x: a\n", "b.yml": "x: b\n"})
    assert (top, problems) == ({"x": "b"}, [])


def test_load_config_nested_includes_relative_to_root():
    top, problems = load(
        {
            MAIN: "include: ci/a.yml\n",
            "ci/a.yml": "include: ci/b.yml\na: 1\n",
            "ci/b.yml": "b: 1\n",
        }
    )
    assert (top, problems) == ({"b": 1, "a": 1}, [])


def test_load_config_same_file_twice_merged_once_in_effect():
    top, problems = load(
        {
            MAIN: "include: [a.yml, b.yml]\n",
            "a.yml": "include: c.yml\n",
            "b.yml": "include: c.yml\n",
            "c.yml": "c: 1\n",
        }
    )
    assert (top, problems) == ({"c": 1}, [])


def test_load_config_cycle_refused_with_chain():
    _, problems = load(
        {MAIN: "include: a.yml\n", "a.yml": "include: b.yml\n", "b.yml": "include: a.yml\n"}
    )
    assert problems == ["b.yml:1:10: include of 'a.yml' is circular: a.yml -> b.yml -> a.yml"]


def test_load_config_self_include_refused():
    _, problems = load({MAIN: "include: .gitlab-ci.yml\n"})
    assert problems == [
        ".gitlab-ci.yml:1:10: include of '.gitlab-ci.yml' is circular:"
        " .gitlab-ci.yml -> .gitlab-ci.yml"
    ]


def test_load_config_too_many_includes():
    files = {MAIN: "include: [" + ", ".join(f"f{i}.yml" for i in range(MAX_INCLUDES + 1)) + "]\n"}
    files.update({f"f{i}.yml": f"k{i}: 1\n" for i in range(MAX_INCLUDES + 1)})
    _, problems = load(files)
    col = len("include: [") + sum(len(f"f{i}.yml, ") for i in range(MAX_INCLUDES)) + 1
    assert problems == [
        f".gitlab-ci.yml:1:{col}: more than 150 files included in all, GitLab's limit"
    ]


def test_load_config_wildcards():
    files = {
        MAIN: "include: ['ci/*.yml', 'deep/**.yml', 'any/**/x.yml']\n",
        "ci/a.yml": "a: 1\n",
        "ci/sub/b.yml": "b: 1\n",
        "ci/c.yaml": "c: 1\n",
        "deep/d.yml": "d: 1\n",
        "deep/e/f.yml": "f: 1\n",
        "any/x.yml": "x0: 1\n",
        "any/1/2/x.yml": "x2: 1\n",
    }
    top, problems = load(files)
    assert (top, problems) == ({"a": 1, "d": 1, "f": 1, "x2": 1, "x0": 1}, [])


def test_load_config_wildcard_matching_nothing_includes_nothing():
    top, problems = load({MAIN: "include: 'none/*.yml'\nk: 1\n"})
    assert (top, problems) == ({"k": 1}, [])


def test_wildcard_regex_grammar():
    assert wildcard_regex("/ci/*.yml").pattern == r"ci/[^/]*?\.yml"
    assert wildcard_regex("**/x.yml").fullmatch("x.yml")
    assert wildcard_regex("a/[b].yml").fullmatch("a/[b].yml")
    assert not wildcard_regex("a/[b].yml").fullmatch("a/b.yml")


def test_load_config_server_kinds_refused():
    _, problems = load(
        {
            MAIN: """
                include:
                  - project: group/proj
                    file: x.yml
                  - remote: https://example.com/x.yml
                  - template: Auto-DevOps.gitlab-ci.yml
                  - component: gitlab.com/a/b@1
                  - https://example.com/y.yml
            """
        }
    )
    assert problems == [
        ".gitlab-ci.yml:2:5: include:project " + SERVER,
        ".gitlab-ci.yml:4:5: include:remote " + SERVER,
        ".gitlab-ci.yml:5:5: include:template " + SERVER,
        ".gitlab-ci.yml:6:5: include:component " + SERVER,
        ".gitlab-ci.yml:7:5: include:remote " + SERVER,
    ]


def test_load_config_bad_entries():
    _, problems = load(
        {
            MAIN: """
                include:
                  - missing.yml
                  - notes.txt
                  - {file: x.yml}
                  - 5
                  - {local: [a]}
                  - {local: a.yml, rules: [{if: $X}]}
                  - empty.yml
            """,
            "empty.yml": "  \n",
        }
    )
    assert problems == [
        ".gitlab-ci.yml:2:5: local file 'missing.yml' does not exist",
        ".gitlab-ci.yml:3:5: included file 'notes.txt' does not have a YAML extension"
        " (.yml or .yaml)",
        ".gitlab-ci.yml:4:5: include entry has no valid subkey"
        " (valid subkeys: local, project, remote, template, component, artifact)",
        ".gitlab-ci.yml:5:5: each include must be a mapping or a string, not 5",
        ".gitlab-ci.yml:6:13: included file needs to be a string, not a list",
        ".gitlab-ci.yml:7:20: include:rules is not supported yet",
        ".gitlab-ci.yml:8:5: local file 'empty.yml' is empty",
    ]


def test_load_config_included_file_of_comments_is_empty():
    _, problems = load({MAIN: "include: a.yml\n", "a.yml": "# nothing yet\n"})
    assert problems == [".gitlab-ci.yml:1:10: local file 'a.yml' is empty"]


def test_load_config_problem_inside_included_file_is_positioned_there():
    _, problems = load(
        {
            MAIN: "include: ci/a.yml\n",
            "ci/a.yml": "job:\n  script: x\n  script: y\nlist: !foo [1]\n",
        }
    )
    assert problems == [
        "ci/a.yml:3:3: duplicate key 'script' (first defined at line 2)",
        "ci/a.yml:4:7: unsupported YAML tag '!foo'",
    ]


def test_load_config_included_file_not_a_mapping():
    _, problems = load({MAIN: "include: a.yml\n", "a.yml": "- 1\n"})
    assert problems == ["a.yml:1:1: a GitLab CI file must be a mapping of keys, not a list"]


def test_load_config_included_invalid_yaml():
    _, problems = load({MAIN: "include: a.yml\n", "a.yml": "a: [1\n"})
    assert len(problems) == 1 and problems[0].startswith("a.yml:") and "invalid YAML" in problems[0]


def test_load_config_missing_top_file():
    top, problems = load({})
    assert (top, problems) == (None, [".gitlab-ci.yml:1:1: file not found"])


def test_load_config_nodes_remember_their_file():
    source = DictSource({MAIN: "include: a.yml\nb: 1\n", "a.yml": "a: 1\n"})
    top, _ = load_config(MAIN, source)
    assert top is not None
    assert [(k.value, k.file, v.file) for k, v in top.entries] == [
        ("a", "a.yml", "a.yml"),
        ("b", MAIN, MAIN),
    ]


def test_load_config_too_deep_refused():
    _, problems = load({MAIN: "a: " + "[" * 101 + "]" * 101 + "\n"})
    assert problems == [".gitlab-ci.yml:1:103: nested more than 100 levels deep, GitLab's limit"]
