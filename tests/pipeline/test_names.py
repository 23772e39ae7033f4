"""Job, stage, pipeline and variable names: as free as GitLab's, but never paths or extra lines."""

from __future__ import annotations

import pytest

NOT_A_PATH = "must not start with '/' or have a '.' or '..' segment (names are not paths)"
CONTROL = "must not contain control characters (newline, tab, NUL, escape...)"
# (the name as written in a double-quoted YAML string, as shown in the message, the problem)
JOB_NAME_PROBLEMS = [
    ("../x", "'../x'", NOT_A_PATH),
    ("a/../b", "'a/../b'", NOT_A_PATH),
    ("./b", "'./b'", NOT_A_PATH),
    ("/tmp/x", "'/tmp/x'", NOT_A_PATH),
    ("a\\nb", "'a\\nb'", CONTROL),
    ("a\\0b", "'a\\x00b'", CONTROL),
    ("a\\e[31m", "'a\\x1b[31m'", CONTROL),
    ("a\\tb", "'a\\tb'", CONTROL),
    ("a\\u2028b", "'a\\u2028b'", CONTROL),
    ("x\\n", "'x\\n'", CONTROL),
]


@pytest.mark.parametrize(("name", "shown", "problem"), JOB_NAME_PROBLEMS)
def test_validate_job_name_refused_at_its_position(
    problems, name: str, shown: str, problem: str
) -> None:
    assert problems(
        f"""
        pipeline: {{name: demo}}
        jobs:
          - {{name: "{name}", stage: build, script: x}}
        """
    ) == [f"ci.yaml:3:12: job #1: 'name' {shown} {problem}"]


def test_validate_job_name_too_long(problems) -> None:
    assert problems(
        f"""
        pipeline: {{name: demo}}
        jobs:
          - {{name: {"j" * 256}, stage: build, script: x}}
        """
    ) == [f"ci.yaml:3:12: job #1: 'name' '{'j' * 37}...' is 256 characters long; the limit is 255"]


def test_validate_job_names_as_gitlab_writes_them_accepted(parse) -> None:
    names = ["deploy/staging", "build: [a, b]", "test 1/3", "a b", "a/b", ".hidden", "j" * 255]
    jobs = "".join(f"  - {{name: {name!r}, stage: build, script: x}}\n" for name in names)
    pipeline = parse(f"pipeline: {{name: demo}}\njobs:\n{jobs}")
    assert [job.name for job in pipeline.jobs] == names


def test_validate_stage_name_with_a_newline_refused(problems) -> None:
    assert problems(
        """
        pipeline: {name: demo, stages: ["b\\n"]}
        jobs: [{name: a, stage: "b\\n", script: x}]
        """
    ) == [
        "ci.yaml:1:33: stage name 'b\\n' must not contain control characters (newline, tab, "
        "NUL, escape...)"
    ]


def test_validate_stage_name_climbing_refused(problems) -> None:
    assert problems(
        """
        pipeline: {name: demo, stages: [..]}
        jobs: [{name: a, stage: .., script: x}]
        """
    ) == [
        "ci.yaml:1:33: stage name '..' must not start with '/' or have a '.' or '..' segment "
        "(names are not paths)"
    ]


def test_validate_pipeline_name_trailing_newline_refused(problems) -> None:
    assert problems(
        """
        pipeline: {name: "demo\\n"}
        jobs: [{name: a, stage: build, script: x}]
        """
    ) == [
        "ci.yaml:1:18: pipeline: 'name' 'demo\\n' may only contain letters, digits, '.', '_' "
        "and '-' (it names runs as NAME#N)"
    ]


def test_validate_pipeline_name_too_long(problems) -> None:
    assert problems(
        f"""
        pipeline: {{name: {"p" * 300}}}
        jobs: [{{name: a, stage: build, script: x}}]
        """
    ) == ["ci.yaml:1:18: pipeline: 'name' is 300 characters long; the limit is 255"]


def test_validate_variable_name_trailing_newline_refused(problems) -> None:
    assert problems(
        """
        pipeline: {name: demo, variables: {"FOO\\n": x}}
        jobs: [{name: a, stage: build, script: x}]
        """
    ) == [
        "ci.yaml:1:36: pipeline: variable name 'FOO\\n' must be letters, digits and '_', "
        "not starting with a digit"
    ]
