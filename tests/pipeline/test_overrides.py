"""``--override KEY=VALUE``: each key, typed values, and positioned errors."""

from __future__ import annotations

import pytest

from backend.pipeline import parse_override

BASE = """
pipeline:
  name: demo
  image: cicd-busybox:latest
jobs:
  - name: compile
    stage: build
    script: make
  - name: unit
    stage: test
    script: [pytest]
    variables: {A: "1"}
"""


def test_override_pipeline_image(parse):
    pipeline = parse(BASE, ["pipeline.image=alpine:3.20"])
    assert pipeline.image == "alpine:3.20"
    assert [job.image for job in pipeline.jobs] == ["alpine:3.20", "alpine:3.20"]
    assert pipeline.overrides == {"pipeline.image": "alpine:3.20"}


def test_override_pipeline_name(parse):
    assert parse(BASE, ["pipeline.name=other"]).name == "other"


def test_override_pipeline_variable_added(parse):
    assert parse(BASE, ["pipeline.variables.FOO=bar"]).variables == {"FOO": "bar"}


def test_override_job_image(parse):
    pipeline = parse(BASE, ["jobs.compile.image=gcc:13"])
    assert pipeline.job("compile").image == "gcc:13"
    assert pipeline.job("unit").image == "cicd-busybox:latest"


def test_override_job_variable_replaced_and_added(parse):
    pipeline = parse(BASE, ["jobs.unit.variables.A=2", "jobs.unit.variables.B=true"])
    assert pipeline.job("unit").variables == {"A": "2", "B": "true"}


def test_override_job_allow_failure_is_a_boolean(parse):
    assert parse(BASE, ["jobs.unit.allow_failure=true"]).job("unit").allow_failure is True


def test_override_job_script_string_and_flow_list(parse):
    pipeline = parse(BASE, ["jobs.compile.script=make all # not a comment"])
    assert pipeline.job("compile").script == ["make all # not a comment"]
    pipeline = parse(BASE, ["jobs.compile.script=[make, make install]"])
    assert pipeline.job("compile").script == ["make", "make install"]


def test_override_job_timeout_and_retry(parse):
    pipeline = parse(BASE, ["jobs.unit.timeout=2m", "jobs.unit.retry=1"])
    assert (pipeline.job("unit").timeout, pipeline.job("unit").retry) == (120.0, 1)


def test_override_job_stage(parse):
    pipeline = parse(BASE, ["jobs.unit.stage=build"])
    assert [stage.name for stage in pipeline.stages] == ["build"]
    assert [job.name for job in pipeline.jobs] == ["compile", "unit"]


def test_override_later_one_wins(parse):
    pipeline = parse(BASE, ["pipeline.image=a:1", "pipeline.image=b:2"])
    assert pipeline.image == "b:2"
    assert pipeline.overrides == {"pipeline.image": "b:2"}


def test_override_invalid_value_positioned_at_the_node_it_replaced(problems):
    assert problems(BASE, ["jobs.unit.retry=5", "jobs.compile.image="]) == [
        "ci.yaml:5:5: override 'jobs.compile.image=': job 'compile': 'image' must be a "
        "non-empty string, not null",
        "ci.yaml:8:5: override 'jobs.unit.retry=5': job 'unit': 'retry' must be an integer "
        "from 0 to 2, not 5",
    ]


def test_override_invalid_value_of_existing_key(problems):
    assert problems(BASE, ["jobs.unit.script=[]"]) == [
        "ci.yaml:10:13: override 'jobs.unit.script=[]': job 'unit': 'script' must be a "
        "non-empty string or list of strings, not an empty list"
    ]


def test_override_without_equals(problems):
    assert problems(BASE, ["pipeline.image"]) == [
        "ci.yaml:1:1: override 'pipeline.image': expected KEY=VALUE, e.g. "
        "pipeline.image=alpine:3.20"
    ]


def test_override_unknown_job(problems):
    assert problems(BASE, ["jobs.compil.image=x"]) == [
        "ci.yaml:1:1: override 'jobs.compil.image=x': no job named 'compil' (did you mean "
        "'compile'?)"
    ]


def test_override_unknown_key(problems):
    assert problems(BASE, ["jobs.compile.needs=[unit]"]) == [
        "ci.yaml:1:1: override 'jobs.compile.needs=[unit]': cannot override "
        "'jobs.compile.needs'; overridable keys are pipeline.image, pipeline.name, "
        "pipeline.variables.NAME, jobs.JOB.image, jobs.JOB.script, jobs.JOB.stage, "
        "jobs.JOB.allow_failure, jobs.JOB.timeout, jobs.JOB.retry, jobs.JOB.variables.NAME"
    ]


def test_override_unknown_key_suggests(problems):
    assert problems(BASE, ["jobs.compile.imag=x"])[0].startswith(
        "ci.yaml:1:1: override 'jobs.compile.imag=x': cannot override 'jobs.compile.imag' (did "
        "you mean 'jobs.compile.image'?); overridable keys are "
    )


def test_override_job_name_with_dots(parse):
    pipeline = parse(
        """
        pipeline: {name: demo}
        jobs: [{name: py3.12, stage: build, script: x}]
        """,
        ["jobs.py3.12.image=python:3.12"],
    )
    assert pipeline.job("py3.12").image == "python:3.12"


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [("a=b", "a", "b"), ("a=b=c", "a", "b=c"), ("a=", "a", ""), ("=b", None, None)],
)
def test_parse_override_splits_at_first_equals(text, key, value):
    override = parse_override(text)
    assert (override.key, override.value) == (key, value) if key else override is None
