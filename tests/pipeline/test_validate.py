"""Validation: one test per rule of SPEC §2.1, each asserting the exact problem line."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.pipeline import DEFAULT_IMAGE, Job, load_pipeline

EXAMPLES = Path(__file__).parents[2] / "examples"


def test_validate_valid_file_builds_the_model(parse):
    pipeline = parse(
        """
        pipeline:
          name: demo
          stages: [build, test]
          image: cicd-busybox:latest
          variables: {A: 1, B: yes, C: 3.10, D: true, E: null}
        jobs:
          - name: compile
            stage: build
            script: make
            artifacts: [build/, "dist/*.whl"]
            timeout: 1h30m
            retry: 2
          - name: unit
            stage: test
            image: cicd-python:bookworm
            script: [pytest -q, echo done]
            needs: [lint]
            allow_failure: true
            variables: {CC: gcc}
          - name: lint
            stage: test
            script: ruff
            timeout: 90
        """
    )
    assert pipeline.name == "demo"
    assert [s.name for s in pipeline.stages] == ["build", "test"]
    assert pipeline.variables == {"A": "1", "B": "yes", "C": "3.10", "D": "true", "E": ""}
    compile_, unit, lint = pipeline.jobs
    # every keyword the file does not set keeps the model's default (the GitLab keywords too)
    bare = Job(name="x", stage="x", image="x", script=["x"]).model_dump()
    assert compile_.model_dump() == {
        **bare,
        "name": "compile",
        "stage": "build",
        "image": "cicd-busybox:latest",
        "script": ["make"],
        "needs": [],
        "allow_failure": False,
        "artifacts": ["build/", "dist/*.whl"],
        "variables": {},
        "timeout": 5400.0,
        "retry": 2,
    }
    assert (bare["when"], bare["dag"], bare["run"], bare["before_script"]) == (
        "on_success", False, True, []
    )
    assert (unit.image, unit.script, unit.needs, unit.allow_failure) == (
        "cicd-python:bookworm",
        ["pytest -q", "echo done"],
        ["lint"],
        True,
    )
    assert unit.variables == {"CC": "gcc"}
    assert lint.timeout == 90.0
    assert pipeline.source == "ci.yaml"


def test_validate_default_stages_drop_unused_ones(parse):
    pipeline = parse(
        """
        pipeline: {name: demo}
        jobs:
          - {name: docs, stage: doc, script: make docs}
          - {name: compile, stage: build, script: make}
        """
    )
    assert [s.name for s in pipeline.stages] == ["build", "doc"]
    assert pipeline.jobs[0].image == DEFAULT_IMAGE


def test_validate_top_level_stages_accepted(parse):
    pipeline = parse(
        """
        stages: [one]
        pipeline: {name: demo}
        jobs: [{name: a, stage: one, script: x}]
        """
    )
    assert [s.name for s in pipeline.stages] == ["one"]


def test_validate_yes_no_on_off_are_strings(problems):
    assert problems(
        """
        pipeline: {name: demo}
        jobs:
          - {name: a, stage: build, script: x, allow_failure: on}
        """
    ) == ["ci.yaml:3:55: job 'a': 'allow_failure' must be true or false, not 'on'"]


def test_validate_empty_file(problems):
    assert problems("# nothing here\n") == [
        "ci.yaml:1:1: file is empty; expected a mapping with 'pipeline' and 'jobs'"
    ]


def test_validate_top_level_not_a_mapping(problems):
    assert problems("- a\n- b\n") == [
        "ci.yaml:1:1: top level must be a mapping with 'pipeline' and 'jobs', not a list"
    ]


def test_validate_missing_pipeline_and_jobs(problems):
    assert problems("variables: {}\n") == [
        "ci.yaml:1:1: missing required key 'jobs'",
        "ci.yaml:1:1: missing required key 'pipeline'",
        "ci.yaml:1:1: unknown key 'variables' at top level",
    ]


def test_validate_pipeline_not_a_mapping(problems):
    assert problems(
        """
        pipeline: demo
        jobs: [{name: a, stage: build, script: x}]
        """
    ) == ["ci.yaml:1:11: 'pipeline' must be a mapping, not 'demo'"]


def test_validate_pipeline_name_missing(problems):
    assert problems(
        """
        pipeline:
          image: x
        jobs: [{name: a, stage: build, script: x}]
        """
    ) == ["ci.yaml:1:1: 'pipeline' is missing required key 'name'"]


def test_validate_pipeline_name_not_a_string(problems):
    assert problems(
        """
        pipeline: {name: 42}
        jobs: [{name: a, stage: build, script: x}]
        """
    ) == ["ci.yaml:1:18: pipeline: 'name' must be a non-empty string, not 42"]


def test_validate_pipeline_name_with_bad_characters(problems):
    assert problems(
        """
        pipeline: {name: "my pipe#1"}
        jobs: [{name: a, stage: build, script: x}]
        """
    ) == [
        "ci.yaml:1:18: pipeline: 'name' 'my pipe#1' may only contain letters, digits, '.', '_' "
        "and '-' (it names runs as NAME#N)"
    ]


def test_validate_pipeline_image_empty(problems):
    assert problems(
        """
        pipeline: {name: demo, image: ""}
        jobs: [{name: a, stage: build, script: x}]
        """
    ) == ["ci.yaml:1:31: pipeline: 'image' must be a non-empty string, not ''"]


def test_validate_unknown_top_level_key(problems):
    assert problems(
        """
        pipeline: {name: demo}
        job: []
        jobs: [{name: a, stage: build, script: x}]
        """
    ) == ["ci.yaml:2:1: unknown key 'job' at top level (did you mean 'jobs'?)"]


def test_validate_hidden_top_level_keys_hold_anchors(parse):
    pipeline = parse(
        """
        .defaults: &defaults
          stage: test
          image: cicd-python:bookworm
        pipeline: {name: demo}
        jobs:
          - <<: *defaults
            name: a
            script: pytest
        """
    )
    assert (pipeline.jobs[0].stage, pipeline.jobs[0].image) == ("test", "cicd-python:bookworm")


def test_validate_unknown_pipeline_key(problems):
    assert problems(
        """
        pipeline:
          name: demo
          imag: x
        jobs: [{name: a, stage: build, script: x}]
        """
    ) == ["ci.yaml:3:3: unknown key 'imag' in 'pipeline' (did you mean 'image'?)"]


def test_validate_unknown_job_key_suggests(problems):
    assert problems(
        """
        pipeline: {name: demo}
        jobs:
          - name: x
            stage: build
            script: make
            scirpt: make
        """
    ) == ["ci.yaml:6:5: unknown key 'scirpt' in job 'x' (did you mean 'script'?)"]


def test_validate_unknown_job_key_without_close_match(problems):
    assert problems(
        """
        pipeline: {name: demo}
        jobs:
          - {name: x, stage: build, script: make, rules: []}
        """
    ) == ["ci.yaml:3:43: unknown key 'rules' in job 'x'"]


def test_validate_stages_both_places(problems):
    assert problems(
        """
        stages: [build]
        pipeline:
          name: demo
          stages: [build]
        jobs: [{name: a, stage: build, script: x}]
        """
    ) == [
        "ci.yaml:4:3: 'stages' is given both at top level and under 'pipeline' (first at line "
        "1); keep one"
    ]


def test_validate_stages_empty(problems):
    assert problems(
        """
        pipeline: {name: demo, stages: []}
        jobs: [{name: a, stage: build, script: x}]
        """
    ) == ["ci.yaml:1:32: 'stages' must be a non-empty list of stage names, not an empty list"]


def test_validate_stages_not_a_list(problems):
    assert problems(
        """
        pipeline: {name: demo, stages: build}
        jobs: [{name: a, stage: build, script: x}]
        """
    ) == ["ci.yaml:1:32: 'stages' must be a non-empty list of stage names, not 'build'"]


def test_validate_stage_name_not_a_string(problems):
    assert problems(
        """
        pipeline: {name: demo, stages: [build, 3]}
        jobs: [{name: a, stage: build, script: x}]
        """
    ) == ["ci.yaml:1:40: stage names must be non-empty strings, not 3"]


def test_validate_duplicate_stage(problems):
    assert problems(
        """
        pipeline:
          name: demo
          stages: [build, build]
        jobs: [{name: a, stage: build, script: x}]
        """
    ) == ["ci.yaml:3:19: duplicate stage 'build' (first listed at line 3)"]


def test_validate_declared_stage_without_jobs(problems):
    assert problems(
        """
        pipeline: {name: demo, stages: [build, deploy]}
        jobs: [{name: a, stage: build, script: x}]
        """
    ) == ["ci.yaml:1:40: stage 'deploy' has no jobs"]


def test_validate_jobs_not_a_list(problems):
    assert problems(
        """
        pipeline: {name: demo}
        jobs:
          compile: {stage: build, script: x}
        """
    ) == [
        "ci.yaml:3:3: 'jobs' must be a list of jobs, not a mapping (write each job as "
        "'- name: ...')"
    ]


def test_validate_jobs_empty(problems):
    assert problems("pipeline: {name: demo}\njobs: []\n") == [
        "ci.yaml:2:7: 'jobs' must list at least one job"
    ]


def test_validate_job_not_a_mapping(problems):
    assert problems(
        """
        pipeline: {name: demo}
        jobs:
          - compile
        """
    ) == ["ci.yaml:3:5: job #1 must be a mapping, not 'compile'"]


def test_validate_job_missing_required_keys(problems):
    assert problems(
        """
        pipeline: {name: demo}
        jobs:
          - image: x
        """
    ) == [
        "ci.yaml:3:5: job #1 is missing required key 'name'",
        "ci.yaml:3:5: job #1 is missing required key 'script'",
        "ci.yaml:3:5: job #1 is missing required key 'stage'",
    ]


def test_validate_job_name_not_a_string(problems):
    assert problems(
        """
        pipeline: {name: demo}
        jobs:
          - {name: [a], stage: build, script: x}
        """
    ) == ["ci.yaml:3:12: job #1: 'name' must be a non-empty string, not a list"]


def test_validate_duplicate_job_name(problems):
    assert problems(
        """
        pipeline: {name: demo}
        jobs:
          - {name: a, stage: build, script: x}
          - {name: a, stage: build, script: y}
        """
    ) == ["ci.yaml:4:12: duplicate job name 'a' (first defined at line 3)"]


def test_validate_undefined_stage_suggests(problems):
    assert problems(
        """
        pipeline: {name: demo, stages: [build, test]}
        jobs:
          - {name: a, stage: build, script: x}
          - {name: b, stage: tset, script: x}
        """
    ) == [
        "ci.yaml:1:40: stage 'test' has no jobs",
        "ci.yaml:4:22: job 'b' has stage 'tset', which is not defined (did you mean 'test'?)",
    ]


def test_validate_undefined_stage_with_default_stages(problems):
    assert problems(
        """
        pipeline: {name: demo}
        jobs:
          - {name: a, stage: lint, script: x}
        """
    ) == [
        "ci.yaml:3:22: job 'a' has stage 'lint', which is not defined (stages: build, test, "
        "doc, deploy; declare others with 'stages')"
    ]


def test_validate_script_empty_list(problems):
    assert problems(
        """
        pipeline: {name: demo}
        jobs:
          - {name: a, stage: build, script: []}
        """
    ) == [
        "ci.yaml:3:37: job 'a': 'script' must be a non-empty string or list of strings, not an "
        "empty list"
    ]


def test_validate_script_line_parsed_as_mapping(problems):
    assert problems(
        """
        pipeline: {name: demo}
        jobs:
          - name: a
            stage: build
            script:
              - echo "a: b"
        """
    ) == [
        "ci.yaml:6:9: job 'a': 'script' lines must be non-empty strings, not a mapping (quote "
        "lines that contain ': ')"
    ]


def test_validate_image_not_a_string(problems):
    assert problems(
        """
        pipeline: {name: demo}
        jobs:
          - {name: a, stage: build, script: x, image: 3}
        """
    ) == ["ci.yaml:3:47: job 'a': 'image' must be a non-empty string, not 3"]


def test_validate_allow_failure_not_a_boolean(problems):
    assert problems(
        """
        pipeline: {name: demo}
        jobs:
          - {name: a, stage: build, script: x, allow_failure: "true"}
        """
    ) == ["ci.yaml:3:55: job 'a': 'allow_failure' must be true or false, not 'true'"]


def test_validate_needs_not_a_list(problems):
    assert problems(
        """
        pipeline: {name: demo}
        jobs:
          - {name: a, stage: build, script: x}
          - {name: b, stage: build, script: x, needs: a}
        """
    ) == ["ci.yaml:4:47: job 'b': 'needs' must be a list, not 'a'"]


def test_validate_needs_entry_not_a_string(problems):
    assert problems(
        """
        pipeline: {name: demo}
        jobs:
          - {name: b, stage: build, script: x, needs: [1]}
        """
    ) == ["ci.yaml:3:48: job 'b': 'needs' entries must be non-empty strings, not 1"]


def test_validate_need_not_defined(problems):
    assert problems(
        """
        pipeline: {name: demo}
        jobs:
          - {name: compile, stage: build, script: x}
          - {name: unit, stage: build, script: x, needs: [compil, docs]}
        """
    ) == [
        "ci.yaml:4:51: job 'unit' needs 'compil', which is not defined (did you mean 'compile'?)",
        "ci.yaml:4:59: job 'unit' needs 'docs', which is not defined",
    ]


def test_validate_need_on_itself(problems):
    assert problems(
        """
        pipeline: {name: demo}
        jobs:
          - {name: a, stage: build, script: x, needs: [a]}
        """
    ) == ["ci.yaml:3:48: job 'a' needs itself"]


def test_validate_need_listed_twice(problems):
    assert problems(
        """
        pipeline: {name: demo}
        jobs:
          - {name: a, stage: build, script: x}
          - {name: b, stage: build, script: x, needs: [a, a]}
        """
    ) == ["ci.yaml:4:51: job 'b' needs 'a' more than once"]


def test_validate_need_in_another_stage(problems):
    assert problems(
        """
        pipeline: {name: demo}
        jobs:
          - {name: compile, stage: build, script: x}
          - {name: unit, stage: test, script: x, needs: [compile]}
        """
    ) == [
        "ci.yaml:4:50: job 'unit' needs 'compile', which is in stage 'build', not 'test' (needs "
        "must be in the same stage)"
    ]


def test_validate_cycle_shows_path_at_first_job(problems):
    assert problems(
        """
        pipeline: {name: demo}
        jobs:
          - name: unit
            stage: test
            script: x
            needs: [integ]
          - name: integ
            stage: test
            script: x
            needs: [e2e]
          - name: e2e
            stage: test
            script: x
            needs: [unit]
        """
    ) == ["ci.yaml:6:13: cyclic dependency in stage 'test': unit -> integ -> e2e -> unit"]


def test_validate_two_cycles_both_reported(problems):
    assert problems(
        """
        pipeline: {name: demo}
        jobs:
          - {name: a, stage: build, script: x, needs: [b]}
          - {name: b, stage: build, script: x, needs: [a]}
          - {name: c, stage: test, script: x, needs: [d]}
          - {name: d, stage: test, script: x, needs: [c]}
        """
    ) == [
        "ci.yaml:3:48: cyclic dependency in stage 'build': a -> b -> a",
        "ci.yaml:5:47: cyclic dependency in stage 'test': c -> d -> c",
    ]


def test_validate_artifacts_not_a_list(problems):
    assert problems(
        """
        pipeline: {name: demo}
        jobs:
          - {name: a, stage: build, script: x, artifacts: dist/}
        """
    ) == ["ci.yaml:3:51: job 'a': 'artifacts' must be a list, not 'dist/'"]


def test_validate_artifacts_entry_empty(problems):
    assert problems(
        """
        pipeline: {name: demo}
        jobs:
          - {name: a, stage: build, script: x, artifacts: [dist/, ""]}
        """
    ) == ["ci.yaml:3:59: job 'a': 'artifacts' entries must be non-empty strings, not ''"]


def test_validate_variables_not_a_mapping(problems):
    assert problems(
        """
        pipeline: {name: demo, variables: [A=1]}
        jobs: [{name: a, stage: build, script: x}]
        """
    ) == ["ci.yaml:1:35: pipeline: 'variables' must be a mapping of names to values, not a list"]


def test_validate_variable_value_a_list(problems):
    assert problems(
        """
        pipeline: {name: demo}
        jobs:
          - {name: a, stage: build, script: x, variables: {A: [1]}}
        """
    ) == ["ci.yaml:3:55: job 'a': variable 'A' must be a string, number or boolean, not a list"]


def test_validate_variable_bad_name(problems):
    assert problems(
        """
        pipeline: {name: demo}
        jobs:
          - {name: a, stage: build, script: x, variables: {1A: x}}
        """
    ) == [
        "ci.yaml:3:52: job 'a': variable name '1A' must be letters, digits and '_', not starting "
        "with a digit"
    ]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("10m", 600), ("1h", 3600), ("1h30m", 5400), ("1h 2m 3s", 3723), ("45", 45)],
)
def test_validate_timeout_forms(parse, text, seconds):
    pipeline = parse(
        f"""
        pipeline: {{name: demo}}
        jobs: [{{name: a, stage: build, script: x, timeout: "{text}"}}]
        """
    )
    assert pipeline.jobs[0].timeout == seconds


@pytest.mark.parametrize("value", ["10 minutes", "0", "1.5", "-5", "m", "true"])
def test_validate_timeout_invalid(problems, value):
    lines = problems(
        f"""
        pipeline: {{name: demo}}
        jobs: [{{name: a, stage: build, script: x, timeout: {value}}}]
        """
    )
    assert len(lines) == 1
    assert lines[0].startswith(
        "ci.yaml:2:52: job 'a': 'timeout' must be a duration like 30s, 10m, 1h30m or a number "
        "of seconds, not "
    )


@pytest.mark.parametrize(("value", "shown"), [("3", "3"), ("-1", "-1"), ("true", "true")])
def test_validate_retry_out_of_range(problems, value, shown):
    assert problems(
        f"""
        pipeline: {{name: demo}}
        jobs: [{{name: a, stage: build, script: x, retry: {value}}}]
        """
    ) == [f"ci.yaml:2:50: job 'a': 'retry' must be an integer from 0 to 2, not {shown}"]


def test_validate_many_problems_reported_at_once_sorted():
    with pytest.raises(Exception) as info:
        load_pipeline(EXAMPLES / "invalid/.pipelines/pipeline.yaml", display_name="bad.yaml")
    assert [str(p) for p in info.value.problems] == [
        "bad.yaml:4:25: stage 'deploy' has no jobs",
        "bad.yaml:5:3: unknown key 'imag' in 'pipeline' (did you mean 'image'?)",
        "bad.yaml:8:5: job 'compile' is missing required key 'script'",
        "bad.yaml:10:5: unknown key 'scirpt' in job 'compile' (did you mean 'script'?)",
        "bad.yaml:15:13: job 'unit' needs 'compile', which is in stage 'build', not 'test' "
        "(needs must be in the same stage)",
        "bad.yaml:15:22: cyclic dependency in stage 'test': unit -> integ -> unit",
        "bad.yaml:16:12: job 'unit': 'retry' must be an integer from 0 to 2, not 5",
        "bad.yaml:22:20: job 'integ': 'allow_failure' must be true or false, not 'yes'",
        "bad.yaml:24:11: duplicate job name 'unit' (first defined at line 12)",
        "bad.yaml:25:12: job 'unit' has stage 'tset', which is not defined (did you mean 'test'?)",
        "bad.yaml:27:14: job 'unit': 'timeout' must be a duration like 30s, 10m, 1h30m or a "
        "number of seconds, not 'ten minutes'",
    ]


@pytest.mark.parametrize("name", ["python-project", "dag"])
def test_validate_examples_are_valid(name):
    pipeline = load_pipeline(EXAMPLES / name / ".pipelines/pipeline.yaml")
    assert pipeline.name == name
