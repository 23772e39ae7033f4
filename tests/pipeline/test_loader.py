"""Loading: files, encodings, YAML syntax, duplicate keys, anchors and the YAML 1.2 scalars."""

from __future__ import annotations

import math
from typing import Any

import pytest

from backend.errors import PipelineInvalid
from backend.pipeline import load_pipeline, loader
from backend.pipeline.loader import Map, Scalar, Seq, parse_yaml, resolve_plain

VALID = "pipeline: {name: demo}\njobs: [{name: a, stage: build, script: x}]\n"


def lines(exc: pytest.ExceptionInfo[PipelineInvalid]) -> list[str]:
    return [str(problem) for problem in exc.value.problems]


def test_load_pipeline_source_is_the_path_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".pipelines").mkdir()
    (tmp_path / ".pipelines/ci.yaml").write_text(VALID)
    assert load_pipeline(".pipelines/ci.yaml").source == ".pipelines/ci.yaml"
    assert load_pipeline(tmp_path / ".pipelines/ci.yaml", display_name="x.yml").source == "x.yml"


def test_load_pipeline_missing_file(tmp_path):
    with pytest.raises(PipelineInvalid) as info:
        load_pipeline(tmp_path / "nope.yaml", display_name="nope.yaml")
    assert lines(info) == ["nope.yaml:1:1: file not found"]


def test_load_pipeline_directory(tmp_path):
    with pytest.raises(PipelineInvalid) as info:
        load_pipeline(tmp_path, display_name="dir")
    assert lines(info) == ["dir:1:1: is a directory, not a file"]


def test_load_pipeline_not_utf8_points_at_the_byte(tmp_path):
    path = tmp_path / "ci.yaml"
    path.write_bytes(b"pipeline:\n  name: d\xc3\xa9mo \xff\n")
    with pytest.raises(PipelineInvalid) as info:
        load_pipeline(path, display_name="ci.yaml")
    assert lines(info) == ["ci.yaml:2:14: file is not valid UTF-8 (byte 0xff)"]


def test_load_pipeline_utf8_bom_accepted(tmp_path):
    path = tmp_path / "ci.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + VALID.encode())
    assert load_pipeline(path).name == "demo"


def test_parse_yaml_syntax_error_reports_ruamel_position():
    with pytest.raises(PipelineInvalid) as info:
        parse_yaml("a: [1\nb: 2\n", "ci.yaml")
    assert lines(info) == [
        "ci.yaml:2:2: invalid YAML: expected ',' or ']', but got ':' (while parsing a flow "
        "sequence at line 1)"
    ]


def test_parse_yaml_syntax_error_same_without_libyaml(monkeypatch):
    monkeypatch.setattr(loader, "_LIBYAML_LOADER", None)
    with pytest.raises(PipelineInvalid) as info:
        parse_yaml("a: [1\nb: 2\n", "ci.yaml")
    assert lines(info)[0].startswith("ci.yaml:2:2: invalid YAML: expected ',' or ']'")


def test_parse_yaml_tab_indentation_is_an_error():
    with pytest.raises(PipelineInvalid) as info:
        parse_yaml("a:\n\tb: 1\n", "ci.yaml")
    assert lines(info)[0].startswith("ci.yaml:2:1: invalid YAML: ")


def test_parse_yaml_second_document_is_an_error():
    _root, problems = parse_yaml("a: 1\n---\nb: 2\n", "ci.yaml")
    assert [str(p) for p in problems] == [
        "ci.yaml:2:1: invalid YAML: expected a single document, found another"
    ]


def test_parse_yaml_duplicate_keys_all_reported():
    _, problems = parse_yaml("a: 1\nb: 2\na: 3\nb: 4\n", "ci.yaml")
    assert [str(p) for p in problems] == [
        "ci.yaml:3:1: duplicate key 'a' (first defined at line 1)",
        "ci.yaml:4:1: duplicate key 'b' (first defined at line 2)",
    ]


def test_parse_pipeline_duplicate_key_in_job(problems):
    assert problems(
        """
        pipeline: {name: demo}
        jobs:
          - name: a
            stage: build
            script: x
            script: y
        """
    ) == ["ci.yaml:6:5: duplicate key 'script' (first defined at line 5)"]


def test_parse_yaml_positions_of_keys_and_values():
    root, _ = parse_yaml("top:\n  - key: value\n", "f")
    assert isinstance(root, Map)
    seq = root.get("top")
    assert isinstance(seq, Seq)
    item = seq.items[0]
    assert isinstance(item, Map)
    key = item.key_node("key")
    value = item.get("key")
    assert (key.line, key.col, value.line, value.col) == (2, 5, 2, 10)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("yes", "yes"),
        ("no", "no"),
        ("on", "on"),
        ("off", "off"),
        ("true", True),
        ("False", False),
        ("~", None),
        ("null", None),
        ("", None),
        ("12", 12),
        ("012", 12),
        ("0o17", 15),
        ("0x1F", 31),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        ("-.inf", -math.inf),
        ("1_000", "1_000"),
        ("0b101", "0b101"),
        ("3.10", 3.1),
    ],
)
def test_resolve_plain_uses_yaml_1_2_core_schema(text, value):
    assert resolve_plain(text) == value and type(resolve_plain(text)) is type(value)


def test_parse_yaml_quoted_and_tagged_scalars():
    root, problems = parse_yaml("a: 'true'\nb: !!str 5\nc: !!int '7'\nd: |\n  x\n", "f")
    assert not problems
    assert [root.get(k).value for k in "abcd"] == ["true", "5", 7, "x\n"]


def test_parse_yaml_unsupported_tag():
    _, problems = parse_yaml("a: !reference [x, y]\n", "f")
    assert [str(p) for p in problems] == ["f:1:4: unsupported YAML tag '!reference'"]


def test_parse_yaml_merge_keys_explicit_wins():
    root, problems = parse_yaml("b: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n", "f")
    assert not problems
    merged = root.get("c")
    assert {k.value: v.value for k, v in merged.entries} == {"y": 3, "x": 1}


def test_parse_yaml_undefined_alias():
    _, problems = parse_yaml("a: *nope\n", "f")
    assert [str(p) for p in problems] == [
        "f:1:4: alias '*nope' refers to no anchor '&nope' before it"
    ]


def test_parse_yaml_recursive_alias_refused():
    _, problems = parse_yaml("a: &x [1, *x]\n", "f")
    assert [str(p) for p in problems] == ["f:1:11: recursive alias '*x' refers to its own anchor"]


def test_parse_yaml_deep_nesting_accepted_up_to_a_limit():
    root, _ = parse_yaml("[" * 500 + "]" * 500, "f")
    assert isinstance(root, Seq)


def test_parse_yaml_too_deep_nesting_is_an_error():
    with pytest.raises(PipelineInvalid) as info:
        parse_yaml("[" * 5000 + "]" * 5000, "f")
    assert lines(info) == [
        "f:1:1001: invalid YAML: exceeded maximum nesting depth (while increasing flow level "
        "at line 1)"
    ]


def test_parse_yaml_billion_laughs_stays_small():
    text = "a: &a [x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(20)
    )
    root, problems = parse_yaml(text, "f")
    assert not problems and isinstance(root, Map)


def test_parse_yaml_complex_key_refused():
    _, problems = parse_yaml("? [a]\n: 1\n", "f")
    assert [str(p) for p in problems] == ["f:1:3: mapping keys must be strings, not a list"]


def test_parse_yaml_scalar_text_kept_for_numbers():
    root, _ = parse_yaml("v: 3.10\n", "f")
    node = root.get("v")
    assert isinstance(node, Scalar) and (node.value, node.text) == (3.1, "3.10")


MERGES = """\
job:
  a: own-first
  <<: {a: merged-1, b: merged-1}
  <<: [{b: merged-2, c: merged-2}, {c: merged-3, d: merged-3}]
  d: own-last
"""


def _plain(node: Any) -> Any:
    if isinstance(node, Map):
        return {key.value: _plain(value) for key, value in node.entries}
    return node.value


def test_parse_yaml_merges_explicit_keys_win_then_the_first_merge() -> None:
    root, problems = parse_yaml(MERGES, "m.yaml")
    assert problems == []
    assert _plain(root) == {"job": {
        "a": "own-first", "d": "own-last", "b": "merged-1", "c": "merged-2",
    }}


def test_parse_yaml_ruby_merges_apply_in_order_like_gitlab() -> None:
    # Ruby's YAML (GitLab): a merge overrides keys before it, keys after it override the merge,
    # the later of two merges wins, and in a list of mappings the first wins
    root, problems = parse_yaml(MERGES, "m.yaml", ruby_merges=True)
    assert problems == []
    assert _plain(root) == {"job": {
        "a": "merged-1", "b": "merged-2", "c": "merged-2", "d": "own-last",
    }}
