"""!reference tags: kept by the loader, resolved anywhere, nested, refused when wrong."""

from __future__ import annotations

import textwrap

from backend.pipeline.gitlab.include import KEEP_TAGS
from backend.pipeline.gitlab.reference import resolve_references
from backend.pipeline.gitlab.tree import plain
from backend.pipeline.loader import Map, Seq, parse_yaml


def resolve(text: str) -> tuple[object, list[str]]:
    """The top level with references resolved, as plain values, and the problem lines."""
    root, problems = parse_yaml(textwrap.dedent(text).lstrip("\n"), "ci.yml", keep_tags=KEEP_TAGS)
    assert isinstance(root, Map) and problems == []
    top, found = resolve_references(root)
    return plain(top), [str(p) for p in found]


def test_parse_yaml_keeps_reference_tag_only_when_asked():
    text = "a: !reference [.b, c]\n"
    root, problems = parse_yaml(text, "ci.yml", keep_tags=KEEP_TAGS)
    assert problems == []
    assert isinstance(root, Map)
    value = root.get("a")
    assert isinstance(value, Seq) and value.tag == "!reference" and value.file == "ci.yml"
    _, problems = parse_yaml(text, "ci.yml")
    assert [str(p) for p in problems] == ["ci.yml:1:4: unsupported YAML tag '!reference'"]


def test_resolve_references_anywhere():
    top, problems = resolve(
        """
        .vars: {A: "1"}
        .img: {image: {name: alpine}}
        .rules: {rules: [{if: $X}]}
        job:
          variables: !reference [.vars]
          image: !reference [.img, image, name]
          rules: !reference [.rules, rules]
          needs: [!reference [.img, image, name]]
        """
    )
    assert problems == []
    assert top["job"] == {  # type: ignore[index]
        "variables": {"A": "1"},
        "image": "alpine",
        "rules": [{"if": "$X"}],
        "needs": ["alpine"],
    }


def test_resolve_references_nested_reference_resolved():
    top, problems = resolve(
        """
        .a: {script: [a]}
        .b: {script: [!reference [.a, script], b]}
        job: {script: [!reference [.b, script], c]}
        """
    )
    assert problems == []
    assert top["job"] == {"script": [[["a"], "b"], "c"]}  # type: ignore[index]


def nested(levels: int) -> str:
    """``levels`` hidden entries, each referencing the next, and a job at the top."""
    lines = [f".r{i}: {{v: !reference [.r{i + 1}, v]}}" for i in range(1, levels)]
    lines.append(f".r{levels}: {{v: end}}")
    return "job: {v: !reference [.r1, v]}\n" + "\n".join(lines) + "\n"


def test_resolve_references_ten_levels_allowed():
    top, problems = resolve(nested(10))  # the job's reference and nine below it
    assert problems == []
    assert top["job"] == {"v": "end"}  # type: ignore[index]


def test_resolve_references_eleven_levels_refused():
    _, problems = resolve(nested(11))
    assert problems == ["ci.yml:11:11: !reference [.r11, v] nests references more than 10 deep"]


def test_resolve_references_circular_refused():
    _, problems = resolve(
        """
        .a: {v: !reference [.b, v]}
        .b: {v: !reference [.a, v]}
        """
    )
    assert problems == ["ci.yml:1:9: !reference [.b, v] is part of a circular chain of references"]


def test_resolve_references_unknown_targets():
    top, problems = resolve(
        """
        .setup: {script: [x], image: alpine}
        a: {script: !reference [.setpu, script]}
        b: {script: !reference [.setup, scripts]}
        c: {script: !reference [.setup, image, name]}
        """
    )
    assert problems == [
        "ci.yml:2:13: !reference [.setpu, script] could not be found:"
        " no top-level entry '.setpu' (did you mean '.setup'?)",
        "ci.yml:3:13: !reference [.setup, scripts] could not be found:"
        " '.setup' has no key 'scripts' (did you mean 'script'?)",
        "ci.yml:4:13: !reference [.setup, image, name] could not be found:"
        " 'image' is 'alpine', not a mapping",
    ]
    assert top["a"] == {"script": None}  # type: ignore[index]


def test_resolve_references_target_resolved_once_and_shared():
    # 1,000 references to one big list cost the list once, not 1,000 times
    lines = [".big: {v: [" + ", ".join(f"s{i}" for i in range(1000)) + "]}"]
    lines += [f"j{i}: {{v: !reference [.big, v]}}" for i in range(1000)]
    root, _ = parse_yaml("\n".join(lines) + "\n", "ci.yml", keep_tags=KEEP_TAGS)
    assert isinstance(root, Map)
    top, problems = resolve_references(root)
    values = [job.get("v") for key, job in top.entries if isinstance(job, Map)]
    assert problems == [] and len(values) == 1001
    assert all(value is values[0] for value in values)


def test_resolve_references_bad_shapes():
    _, problems = resolve(
        """
        a: !reference .b
        b: !reference []
        c: !reference [.a, [x]]
        """
    )
    assert problems == [
        "ci.yml:1:4: !reference needs a list of names like [.job, script], not '.b'",
        "ci.yml:2:4: !reference needs a list of names like [.job, script], not a list",
        "ci.yml:3:4: !reference needs a list of names like [.job, script]",
    ]
