"""The JSON Schema of the native format: what validation accepts, it accepts; typos, it refuses.

The schema is for editors; ``validate.py`` stays the truth. So every document here is also given
to validation, and each test says which way the two must agree.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.errors import PipelineInvalid
from backend.pipeline import load_pipeline, parse_pipeline
from backend.pipeline.loader import Map, Node, Scalar, Seq, parse_yaml, read_text
from backend.pipeline.schema import pipeline_schema, schema_text
from backend.pipeline.validate import JOB_KEYS, PIPELINE_KEYS, TOP_KEYS

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "examples"
SCHEMA_FILE = ROOT / "docs" / "pipeline-format.schema.json"
VALIDATOR = jsonschema.Draft202012Validator(pipeline_schema())


def data(node: Node | None) -> Any:
    """A loaded YAML tree as plain JSON-like data, read the way validation reads it."""
    if isinstance(node, Map):
        return {
            key.value if isinstance(key.value, str) else key.text: data(value)
            for key, value in node.entries
        }
    if isinstance(node, Seq):
        return [data(item) for item in node.items]
    return node.value if isinstance(node, Scalar) else None


def schema_errors(document: Any) -> list[str]:
    """The JSON paths the schema complains about, sorted (empty when it accepts)."""
    return sorted(error.json_path for error in VALIDATOR.iter_errors(document))


def accepted_by_check(document: Any) -> bool:
    """Whether validation accepts ``document`` (written as JSON, which is YAML)."""
    try:
        parse_pipeline(json.dumps(document), "ci.yaml")
    except PipelineInvalid:
        return False
    return True


def example_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*/.pipelines/*.y*ml"))


FULL: dict[str, Any] = {
    "pipeline": {
        "name": "build-and-test",
        "image": "python:3.12-slim",
        "variables": {"A": "1", "B": 2, "C": True, "D": None, "_e": 1.5},
    },
    "stages": ["build", "deploy/staging"],
    ".template": {"image": "gcc:14"},
    "jobs": [
        {
            "name": "compile",
            "stage": "build",
            "image": "gcc:14",
            "script": "make",
            "artifacts": ["build/", "dist/*.whl", "reports/**/junit.xml"],
            "variables": {"CC": "gcc"},
            "timeout": "1h30m",
            "retry": 2,
        },
        {
            "name": "build: [a, b]",
            "stage": "build",
            "script": ["make a", "make b"],
            "needs": ["compile"],
            "allow_failure": True,
            "timeout": 90,
            "retry": 0,
        },
        {"name": "ship 1/3", "stage": "deploy/staging", "script": "true", "timeout": " 10m "},
    ],
}


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(pipeline_schema())
    assert pipeline_schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_schema_describes_exactly_the_keys_validation_knows() -> None:
    schema = pipeline_schema()
    top = schema["properties"]
    assert set(top) == set(TOP_KEYS)
    assert set(top["pipeline"]["properties"]) == set(PIPELINE_KEYS)
    assert set(top["jobs"]["items"]["properties"]) == set(JOB_KEYS)


def test_schema_file_in_docs_is_what_the_generator_writes() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text(), (
        "docs/pipeline-format.schema.json is out of date: run "
        "`cicd schema > docs/pipeline-format.schema.json`"
    )


def test_schema_command_prints_the_docs_file() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cicd_cli", "schema"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == SCHEMA_FILE.read_text(encoding="utf-8")


def test_schema_examples_exist() -> None:
    assert [p.relative_to(EXAMPLES).as_posix() for p in example_files()] == [
        "dag/.pipelines/pipeline.yaml",
        "invalid/.pipelines/pipeline.yaml",
        "python-project/.pipelines/pipeline.yaml",
    ]


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.parent.parent.name)
def test_schema_agrees_with_check_on_example(path: Path) -> None:
    root, _ = parse_yaml(read_text(path, str(path)), str(path))
    try:
        load_pipeline(path)
    except PipelineInvalid:
        assert schema_errors(data(root)) != []
    else:
        assert schema_errors(data(root)) == []


def test_schema_refuses_the_invalid_example() -> None:
    path = EXAMPLES / "invalid/.pipelines/pipeline.yaml"
    root, _ = parse_yaml(read_text(path, str(path)), str(path))
    # imag, scirpt (unknown keys), retry: 5, allow_failure: yes, timeout: ten minutes; the
    # undefined need, duplicate name and unknown stage are for `cicd check` alone
    assert schema_errors(data(root)) == [
        "$.jobs[0]",
        "$.jobs[0]",
        "$.jobs[1].retry",
        "$.jobs[2].allow_failure",
        "$.jobs[3].timeout",
        "$.pipeline",
    ]


def test_schema_accepts_a_file_with_every_key() -> None:
    assert accepted_by_check(FULL)
    assert schema_errors(FULL) == []


def _with(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """``FULL`` with the value at ``path`` replaced (``...`` as the value deletes it)."""
    document = json.loads(json.dumps(FULL))
    target = document
    for step in path[:-1]:
        target = target[step]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return document


INVALID = {
    "unknown top-level key": (("stagse",), ["a"], ["$"]),
    "unknown pipeline key": (("pipeline", "imag"), "x", ["$.pipeline"]),
    "unknown job key": (("jobs", 0, "scirpt"), "make", ["$.jobs[0]"]),
    "no pipeline": (("pipeline",), ..., ["$"]),
    "no jobs": (("jobs",), ..., ["$"]),
    "jobs empty": (("jobs",), [], ["$.jobs"]),
    "jobs as a mapping": (("jobs",), {"compile": {}}, ["$.jobs"]),
    "pipeline without name": (("pipeline", "name"), ..., ["$.pipeline"]),
    "pipeline name with a space": (("pipeline", "name"), "my pipe", ["$.pipeline.name"]),
    "pipeline name too long": (("pipeline", "name"), "a" * 256, ["$.pipeline.name"]),
    "stages empty": (("stages",), [], ["$.stages"]),
    "stages repeated": (("stages",), ["build", "build"], ["$.stages"]),
    "stages in both places": (("pipeline", "stages"), ["build"], ["$"]),
    "stage name climbing": (("stages",), ["build", "../up"], ["$.stages[1]"]),
    "stage name rooted": (("stages",), ["build", "/tmp"], ["$.stages[1]"]),
    "image empty": (("pipeline", "image"), " ", ["$.pipeline.image"]),
    "variables as a list": (("pipeline", "variables"), ["A=1"], ["$.pipeline.variables"]),
    "variable name with a digit first": (
        ("pipeline", "variables"),
        {"1A": "x"},
        ["$.pipeline.variables"],
    ),
    "variable value a mapping": (
        ("jobs", 0, "variables", "CC"),
        {"a": 1},
        ["$.jobs[0].variables.CC"],
    ),
    "job without script": (("jobs", 0, "script"), ..., ["$.jobs[0]"]),
    "job name with a newline": (("jobs", 0, "name"), "a\nb", ["$.jobs[0].name"]),
    "job name with a dot segment": (("jobs", 0, "name"), "a/./b", ["$.jobs[0].name"]),
    "script a number": (("jobs", 0, "script"), 5, ["$.jobs[0].script"]),
    "script empty list": (("jobs", 0, "script"), [], ["$.jobs[0].script"]),
    "script line a mapping": (("jobs", 0, "script"), [{"echo": "a"}], ["$.jobs[0].script"]),
    "needs a string": (("jobs", 1, "needs"), "compile", ["$.jobs[1].needs"]),
    "needs repeated": (("jobs", 1, "needs"), ["compile", "compile"], ["$.jobs[1].needs"]),
    "allow_failure a string": (("jobs", 1, "allow_failure"), "yes", ["$.jobs[1].allow_failure"]),
    "artifacts a string": (("jobs", 0, "artifacts"), "dist/", ["$.jobs[0].artifacts"]),
    "timeout words": (("jobs", 0, "timeout"), "ten minutes", ["$.jobs[0].timeout"]),
    "timeout zero": (("jobs", 0, "timeout"), "0m", ["$.jobs[0].timeout"]),
    "timeout negative": (("jobs", 0, "timeout"), -5, ["$.jobs[0].timeout"]),
    "timeout out of order": (("jobs", 0, "timeout"), "10m1h", ["$.jobs[0].timeout"]),
    "retry over the limit": (("jobs", 0, "retry"), 3, ["$.jobs[0].retry"]),
    "retry a boolean": (("jobs", 0, "retry"), True, ["$.jobs[0].retry"]),
}


@pytest.mark.parametrize("case", list(INVALID), ids=list(INVALID))
def test_schema_refuses_invalid_document(case: str) -> None:
    path, value, expected = INVALID[case]
    document = _with(path, value)
    assert not accepted_by_check(document)
    assert schema_errors(document) == expected


# -- whatever validation accepts, the schema accepts -------------------------------------------

_names = st.sampled_from(["a", "b", "deploy/x", "c d", "../e", "", " ", "f" * 256, "g\th"])
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["1", "10m", "0s", "1h30m"])
)
_values = st.one_of(_scalars, st.lists(_names, max_size=3), st.dictionaries(_names, _scalars))
_variables = st.dictionaries(st.sampled_from(["A", "_b", "C1"]), _scalars, max_size=3)
# a value validation accepts for each job key (name, stage and needs are drawn apart)
_RIGHT: dict[str, st.SearchStrategy[Any]] = {
    "image": st.sampled_from(["gcc:14", "registry.example.com:5000/team/img@sha256:00"]),
    "script": st.one_of(st.just("make"), st.lists(st.sampled_from(["a", "b c"]), min_size=1)),
    "allow_failure": st.booleans(),
    "artifacts": st.lists(st.sampled_from(["dist/", "*.whl", "a/**/b.xml"]), max_size=3),
    "variables": _variables,
    "timeout": st.sampled_from([1, 90, "5", "30s", "10m", "1h30m", " 1h 2m 3s ", "0h1s"]),
    "retry": st.integers(0, 2),
}


@st.composite
def _documents(draw: st.DrawFn) -> dict[str, Any]:
    """Pipeline documents near the valid ones: each key's value mostly right, sometimes not."""
    jobs: list[dict[str, Any]] = []
    for index in range(draw(st.integers(1, 4))):
        stage = draw(st.sampled_from(["build", "test", "deploy/x", "build: [1, 2]"]))
        job: dict[str, Any] = {"name": draw(st.sampled_from([f"j{index}", f"t {index}/3"]))}
        job["stage"] = stage
        job["script"] = "make"
        for key in draw(st.sets(st.sampled_from(sorted(_RIGHT)))):
            wrong = draw(st.integers(0, 9)) == 0
            job[key] = draw(_values if wrong else _RIGHT[key])
        earlier = [other["name"] for other in jobs if other["stage"] == stage]
        if earlier and draw(st.booleans()):
            job["needs"] = draw(st.lists(st.sampled_from(earlier), unique=True, min_size=1))
        jobs.append(job)
    pipeline: dict[str, Any] = {"name": draw(st.sampled_from(["p", "p-1.x", "p", "p q"]))}
    if draw(st.booleans()):
        pipeline["variables"] = draw(_variables)
    if draw(st.booleans()):
        pipeline["image"] = draw(st.one_of(_RIGHT["image"], _values))
    document: dict[str, Any] = {"pipeline": pipeline, "jobs": jobs}
    stages = list(dict.fromkeys(job["stage"] for job in jobs))
    if not set(stages) <= {"build", "test"} or draw(st.booleans()):
        (document if draw(st.booleans()) else pipeline)["stages"] = stages
    if draw(st.booleans()):
        document[".anchors"] = draw(_values)
    return document


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_documents())
def test_schema_accepts_whatever_check_accepts(document: dict[str, Any]) -> None:
    if accepted_by_check(document):
        assert schema_errors(document) == []
