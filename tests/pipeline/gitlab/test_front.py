"""The GitLab front end through its entry points: stages, workflow, needs, parallel, notes."""

from __future__ import annotations

import json
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.errors import PipelineInvalid
from backend.pipeline.gitlab.context import GitlabContext, is_gitlab_file
from backend.pipeline.gitlab.front import load_gitlab, parse_gitlab
from backend.pipeline.gitlab.include import DictSource
from backend.pipeline.model import Pipeline

MAIN = ".gitlab-ci.yml"


def load(text: str, **context: object) -> Pipeline:
    """The pipeline of ``text`` (dedented) for a context made of ``context``."""
    return parse_gitlab(
        textwrap.dedent(text).lstrip("\n"),
        MAIN,
        name="p",
        context=GitlabContext(**context),  # type: ignore[arg-type]
    )


def problems(text: str, **context: object) -> list[str]:
    """The problem lines ``text`` raises."""
    with pytest.raises(PipelineInvalid) as raised:
        load(text, **context)
    return [str(p) for p in raised.value.problems]


def shape(pipeline: Pipeline) -> list[tuple[str, list[str]]]:
    """Stages and their jobs' names."""
    return [(s.name, [j.name for j in s.jobs]) for s in pipeline.stages]


# -- entry points ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (".gitlab-ci.yml", True),
        ("repo/.gitlab-ci.yaml", True),
        (".gitlab/ci/build.yml", True),
        ("sub/.gitlab/x.yaml", True),
        (".pipelines/ci.yaml", False),
        ("gitlab-ci.yml", False),
        (".gitlab/readme.md", False),
    ],
)
def test_is_gitlab_file_names(path: str, expected: bool) -> None:
    assert is_gitlab_file(path) is expected


def test_parse_gitlab_minimal_file() -> None:
    pipeline = load("build: {script: make}\n")
    assert pipeline.format == "gitlab"
    assert pipeline.name == "p"
    assert pipeline.source == MAIN
    assert pipeline.image is None
    assert shape(pipeline) == [("test", ["build"])]
    job = pipeline.job("build")
    assert (job.script, job.image, job.dag, job.run, job.needs) == (
        ["make"],
        "docker.io/library/ubuntu:latest",
        False,
        True,
        [],
    )


def test_load_gitlab_reads_local_includes_and_positions_problems_there() -> None:
    source = DictSource(
        {
            MAIN: "include: ci/jobs.yml\nstages: [build]\n",
            "ci/jobs.yml": "build:\n  stage: build\n  script: make\n  retry: 9\n",
        }
    )
    with pytest.raises(PipelineInvalid) as raised:
        load_gitlab(MAIN, source, name="p")
    assert [str(p) for p in raised.value.problems] == [
        "ci/jobs.yml:4:10: job 'build': 'retry' must be an integer from 0 to 2, not 9"
    ]


def test_load_gitlab_every_problem_at_once_sorted() -> None:
    assert problems(
        """
        a: {script: x, stage: bild}
        b: {script: x, scirpt: y, needs: [c], timeout: forever}
        c: {script: x, stage: deploy}
        """
    ) == [
        ".gitlab-ci.yml:1:23: job 'a': chosen stage 'bild' does not exist (did you mean "
        "'build'?); available stages are .pre, build, test, deploy, .post",
        ".gitlab-ci.yml:2:16: job 'b': unknown key 'scirpt' (did you mean 'script'?)",
        ".gitlab-ci.yml:2:35: job 'b' needs 'c', which is in the later stage 'deploy' "
        "(needs name jobs of the same or an earlier stage)",
        ".gitlab-ci.yml:2:48: job 'b': 'timeout' must be a duration of at most a month, like "
        "'1h 30m', '2 hours' or '3600' (seconds), not 'forever'",
    ]


# -- stages ---------------------------------------------------------------------------------


def test_load_gitlab_default_stages_drop_empty_ones_and_keep_edges_in_place() -> None:
    pipeline = load(
        """
        post: {stage: .post, script: x}
        deploy: {stage: deploy, script: x}
        pre: {stage: .pre, script: x}
        unit: {script: x}
        """
    )
    assert shape(pipeline) == [
        (".pre", ["pre"]),
        ("test", ["unit"]),
        ("deploy", ["deploy"]),
        (".post", ["post"]),
    ]


def test_load_gitlab_declared_stages_in_order_repeats_dropped() -> None:
    pipeline = load(
        """
        stages: [lint, build, lint]
        b: {stage: build, script: x}
        l: {stage: lint, script: x}
        """
    )
    assert shape(pipeline) == [("lint", ["l"]), ("build", ["b"])]


def test_load_gitlab_default_stage_test_must_be_declared() -> None:
    assert problems("stages: [build]\nunit: {script: x}\n") == [
        ".gitlab-ci.yml:2:7: job 'unit': chosen stage 'test' does not exist; "
        "available stages are .pre, build, .post"
    ]


def test_load_gitlab_stages_must_be_strings() -> None:
    assert problems("stages: [build, [1], 3]\nb: {stage: build, script: x}\n") == [
        ".gitlab-ci.yml:1:18: stages must be non-empty strings, not 1",
        ".gitlab-ci.yml:1:22: stages must be non-empty strings, not 3",
    ]


# -- variables ------------------------------------------------------------------------------


def test_load_gitlab_variables_precedence_env_over_job_over_global() -> None:
    pipeline = load(
        """
        variables: {A: global, B: global, C: "$B-c"}
        j:
          script: x
          variables: {B: job, D: "${A}/$CI_COMMIT_SHORT_SHA"}
        """,
        env={"A": "env"},
        commit="abcdef0123456789" + "0" * 24,
    )
    assert pipeline.variables == {"A": "env", "B": "global", "C": "global-c"}
    assert pipeline.job("j").variables == {
        "A": "env",
        "B": "job",
        "C": "job-c",
        "D": "env/abcdef01",
    }


def test_load_gitlab_variables_expand_false_kept_raw() -> None:
    pipeline = load("j:\n  script: x\n  variables:\n    R: {value: $HOME, expand: false}\n")
    assert pipeline.job("j").variables == {"R": "$HOME"}


def test_load_gitlab_inherit_variables_false_takes_no_global() -> None:
    pipeline = load("variables: {A: '1'}\nj: {script: x, inherit: {variables: false}}\n")
    assert pipeline.job("j").variables == {}
    assert pipeline.job_env(pipeline.job("j")) == {}  # what the job's container gets


def test_load_gitlab_job_env_holds_inherited_and_own_variables() -> None:
    pipeline = load("variables: {A: '1', B: '2'}\nj: {script: x, variables: {B: '3'}}\n")
    assert pipeline.job_env(pipeline.job("j")) == {"A": "1", "B": "3"}


def test_load_gitlab_variable_cycle_refused() -> None:
    assert problems("variables: {A: $B, B: $A}\nj: {script: x}\n") == [
        ".gitlab-ci.yml:1:13: circular variable reference detected: A -> B -> A"
    ]


def test_load_gitlab_bad_global_variable_reported_once() -> None:
    assert problems("variables: {A: [1]}\nj: {script: x}\nk: {script: x}\n") == [
        ".gitlab-ci.yml:1:16: variable 'A' must be a string, a number or a mapping with "
        "'value', not a list"
    ]


# -- workflow -------------------------------------------------------------------------------


def test_load_gitlab_workflow_no_rule_matched() -> None:
    text = "workflow:\n  rules:\n    - if: $CI_COMMIT_TAG\nj: {script: x}\n"
    assert problems(text) == [
        ".gitlab-ci.yml:2:3: workflow:rules: this pipeline does not run for branch 'main' "
        "(no rule matched)"
    ]
    assert shape(load(text, tag="v1", branch=None)) == [("test", ["j"])]


def test_load_gitlab_workflow_rule_never() -> None:
    assert problems(
        """
        workflow:
          rules:
            - if: $CI_COMMIT_BRANCH == "main"
              when: never
            - when: always
        j: {script: x}
        """
    ) == [
        ".gitlab-ci.yml:3:7: workflow:rules: this pipeline does not run for branch 'main' "
        "(rule 1 says never)"
    ]


def test_load_gitlab_workflow_rule_variables_override_globals() -> None:
    pipeline = load(
        """
        variables: {DEPLOY: "no"}
        workflow:
          name: nightly
          rules:
            - if: $CI_PIPELINE_SOURCE == "schedule"
              variables: {DEPLOY: "yes"}
            - when: always
        j: {script: x, rules: [{if: $DEPLOY == "yes"}]}
        """,
        source="schedule",
    )
    assert pipeline.variables == {"DEPLOY": "yes"}
    assert pipeline.job("j").run is True
    assert pipeline.ignored == ["workflow:name: pipeline names are cicd's own (NAME#N)"]


def test_load_gitlab_workflow_rule_variables_reach_every_job_below_its_own() -> None:
    # GitLab's own example (docs: workflow:rules:variables): the rule's variables join the
    # pipeline's, which every job inherits under its own variables and its rules' variables.
    pipeline = load(
        """
        variables: {DEPLOY_VARIABLE: default-deploy}
        workflow:
          rules:
            - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH
              variables: {DEPLOY_VARIABLE: deploy-production, IS_MAIN: "true"}
            - when: always
        job1:
          variables: {DEPLOY_VARIABLE: job1-default-deploy}
          rules:
            - if: $CI_COMMIT_TAG
              variables: {DEPLOY_VARIABLE: job1-deploy-production}
            - when: on_success
          script: x
        job2: {script: x}
        job3: {variables: {IS_MAIN: "no"}, rules: [{variables: {IS_MAIN: rule}}], script: x}
        """
    )
    envs = {job.name: pipeline.job_env(job) for job in pipeline.jobs}
    assert envs == {
        "job1": {"DEPLOY_VARIABLE": "job1-default-deploy", "IS_MAIN": "true"},
        "job2": {"DEPLOY_VARIABLE": "deploy-production", "IS_MAIN": "true"},
        "job3": {"DEPLOY_VARIABLE": "deploy-production", "IS_MAIN": "rule"},
    }


def test_load_gitlab_workflow_rule_variables_follow_inherit_variables() -> None:
    pipeline = load(
        """
        variables: {TOP: top}
        workflow:
          rules: [{variables: {TOP: workflow, ONLY_RULE: rule, OTHER: other}}]
        none: {inherit: {variables: false}, script: x}
        some: {inherit: {variables: [TOP, ONLY_RULE]}, script: x}
        uses: {variables: {URL: "https://$ONLY_RULE"}, script: x}
        """
    )
    envs = {job.name: pipeline.job_env(job) for job in pipeline.jobs}
    assert envs == {
        "none": {},
        "some": {"TOP": "workflow", "ONLY_RULE": "rule"},
        "uses": {"TOP": "workflow", "ONLY_RULE": "rule", "OTHER": "other", "URL": "https://rule"},
    }


def test_load_gitlab_workflow_unknown_key() -> None:
    assert problems("workflow: {rulez: []}\nj: {script: x}\n") == [
        ".gitlab-ci.yml:1:12: unknown key 'rulez' in workflow (did you mean 'rules'?)"
    ]


# -- needs ----------------------------------------------------------------------------------


def test_load_gitlab_needs_across_stages_make_a_dag() -> None:
    pipeline = load(
        """
        build: {stage: build, script: x}
        lint: {stage: build, script: x}
        unit: {script: x, needs: [build]}
        none: {script: x, needs: []}
        plain: {script: x}
        """
    )
    assert [(j.name, j.needs, j.dag) for j in pipeline.jobs] == [
        ("build", [], False),
        ("lint", [], False),
        ("unit", ["build"], True),
        ("none", [], True),
        ("plain", [], False),
    ]


def test_load_gitlab_needs_same_stage_allowed() -> None:
    pipeline = load("a: {script: x}\nb: {script: x, needs: [a]}\n")
    assert pipeline.job("b").needs == ["a"]


def test_load_gitlab_needs_unknown_job_with_suggestion() -> None:
    assert problems("build: {script: x}\nunit: {script: x, needs: [biuld]}\n") == [
        ".gitlab-ci.yml:2:27: job 'unit' needs 'biuld', which is not defined "
        "(did you mean 'build'?)"
    ]


def test_load_gitlab_needs_itself_refused() -> None:
    assert problems("a: {script: x, needs: [a]}\n") == [".gitlab-ci.yml:1:24: job 'a' needs itself"]


def test_load_gitlab_optional_need_on_absent_job_dropped() -> None:
    pipeline = load(
        """
        skipped: {script: x, rules: [{when: never}]}
        unit:
          script: x
          needs: [{job: skipped, optional: true}, {job: nowhere, optional: true}]
        """
    )
    assert (pipeline.job("unit").needs, pipeline.job("unit").dag) == ([], True)


def test_load_gitlab_need_on_job_left_out_by_rules_refused() -> None:
    assert problems("x: {script: x, only: [tags]}\ny: {script: x, needs: [x]}\n") == [
        ".gitlab-ci.yml:2:24: 'y' job needs 'x' job, but 'x' does not exist in the pipeline "
        "(only: does not match branch 'main'); to need a job that sometimes does not exist "
        "in the pipeline, use needs:optional"
    ]


def test_load_gitlab_need_on_manual_job_kept() -> None:
    pipeline = load("m: {script: x, when: manual}\ny: {script: x, needs: [m]}\n")
    assert pipeline.job("y").needs == ["m"]


def test_load_gitlab_need_of_a_job_left_out_is_not_checked() -> None:
    pipeline = load("x: {script: x, only: [tags]}\ny: {script: x, needs: [x], only: [tags]}\n")
    assert [j.run for j in pipeline.jobs] == [False, False]


def test_load_gitlab_cycle_refused_with_path() -> None:
    assert problems("a: {script: x, needs: [b]}\nb: {script: x, needs: [a]}\n") == [
        ".gitlab-ci.yml:1:24: cyclic dependency: a -> b -> a"
    ]


def test_load_gitlab_dependencies_checked_and_expanded() -> None:
    pipeline = load(
        """
        build: {stage: build, script: x, parallel: 2}
        unit: {script: x, dependencies: [build]}
        """
    )
    assert pipeline.job("unit").dependencies == ["build 1/2", "build 2/2"]
    assert problems(
        "unit: {script: x, dependencies: [buld]}\nbuild: {stage: build, script: x}\n"
    ) == [
        ".gitlab-ci.yml:1:34: job 'unit': dependency 'buld' is not defined (did you mean 'build'?)"
    ]
    assert problems("unit: {script: x, dependencies: [d]}\nd: {stage: deploy, script: x}\n") == [
        ".gitlab-ci.yml:1:34: job 'unit': dependency 'd' is in the later stage 'deploy' "
        "(dependencies name jobs of the same or an earlier stage)"
    ]


def test_load_gitlab_dependencies_must_be_part_of_needs() -> None:
    assert problems(
        "a: {script: x}\nb: {script: x}\nc: {script: x, needs: [a], dependencies: [a, b]}\n"
    ) == [".gitlab-ci.yml:3:46: job 'c': dependency 'b' should be part of needs"]


# -- parallel -------------------------------------------------------------------------------


def test_load_gitlab_parallel_number_names_and_node_variables() -> None:
    pipeline = load("t: {script: x, parallel: 3}\n")
    assert [(j.name, j.node_index, j.node_total) for j in pipeline.jobs] == [
        ("t 1/3", 1, 3),
        ("t 2/3", 2, 3),
        ("t 3/3", 3, 3),
    ]
    assert pipeline.job("t 2/3").variables == {"CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "3"}


def test_load_gitlab_parallel_matrix_names_and_needs_on_matrix_jobs() -> None:
    pipeline = load(
        """
        build:
          stage: build
          script: x
          parallel:
            matrix:
              - OS: [linux, mac]
                ARCH: [amd64, arm64]
        all: {script: x, needs: [build]}
        one:
          script: x
          needs:
            - job: build
              parallel: {matrix: [{OS: mac, ARCH: arm64}]}
        """
    )
    names = ["build: [linux, amd64]", "build: [linux, arm64]", "build: [mac, amd64]"]
    names.append("build: [mac, arm64]")
    assert [j.name for j in pipeline.stages[0].jobs] == names
    assert pipeline.job("all").needs == names
    assert pipeline.job("one").needs == ["build: [mac, arm64]"]
    assert pipeline.job("build: [mac, amd64]").variables == {
        "OS": "mac",
        "ARCH": "amd64",
        "CI_NODE_INDEX": "3",
        "CI_NODE_TOTAL": "4",
    }


def test_load_gitlab_matrix_variables_in_rules_and_image() -> None:
    pipeline = load(
        """
        t:
          image: python:$PY
          script: x
          parallel: {matrix: [{PY: ["3.11", "3.12"]}]}
          rules: [{if: $PY == "3.12"}]
        """
    )
    assert [(j.name, j.image, j.run) for j in pipeline.jobs] == [
        ("t: [3.11]", "python:3.11", False),
        ("t: [3.12]", "python:3.12", True),
    ]


def test_load_gitlab_parallel_problem_positioned() -> None:
    assert problems("t: {script: x, parallel: 201}\n") == [
        ".gitlab-ci.yml:1:26: job 't': 'parallel' must be from 1 to 200, not 201"
    ]


# -- ignored keywords -----------------------------------------------------------------------


def test_load_gitlab_ignored_keywords_listed_once_in_order() -> None:
    pipeline = load(
        """
        default: {tags: [docker]}
        a: {script: x, coverage: '/\\d+%/', environment: {name: prod, url: "https://x"}}
        b: {script: x, tags: [big], resource_group: prod, coverage: '/x/'}
        c: {trigger: other/project}
        """
    )
    # In the order met: a job's own keys first, then those it takes from default:.
    assert pipeline.ignored == [
        "coverage: coverage is not parsed from job logs",
        "environment: deployments are tracked by a GitLab server; the name is kept, nothing more",
        "tags: runner selection has no local meaning",
        "resource_group: no lock across pipelines; jobs of one run follow needs and stages only",
        "trigger: downstream pipelines need a GitLab server; trigger jobs do not run",
    ]
    assert pipeline.job("a").environment == "prod"
    c = pipeline.job("c")
    assert (c.run, c.skip_reason, c.script) == (
        False,
        "trigger: downstream pipelines need a GitLab server",
        [],
    )


def test_load_gitlab_keys_without_effect_noted_once_where_read() -> None:
    pipeline = load(
        """
        default: {interruptible: true}
        workflow:
          rules: [{exists: {paths: [Gemfile], ref: main}, when: never}, {when: always}]
        a: {script: x, retry: {max: 1, exit_codes: 137}, needs: []}
        b: {script: x, needs: [{job: a, artifacts: true}], rules: [{interruptible: false}]}
        """
    )
    assert pipeline.ignored == [
        "rules:exists:ref: the files of the commit run are used",
        "retry:exit_codes: every failure is retried",
    ]  # interruptible and rules:interruptible act: they are not noted
    assert [(j.name, j.interruptible) for j in pipeline.jobs] == [("a", True), ("b", False)]


def test_load_gitlab_retry_exit_codes_checked() -> None:
    assert problems("j: {script: x, retry: {max: 1, exit_codes: [137, x]}}\n") == [
        ".gitlab-ci.yml:1:50: job 'j': 'retry:exit_codes' must be integers, not 'x'"
    ]


# -- arbitrary input ------------------------------------------------------------------------

NAMES = ["build", "test", ".t", "default", "variables", "stages", "workflow", "include", "pages"]
KEYS = [
    "script",
    "stage",
    "needs",
    "rules",
    "only",
    "except",
    "when",
    "parallel",
    "image",
    "job",
    "variables",
    "if",
    "matrix",
    "allow_failure",
    "cache",
    "artifacts",
    "retry",
    "timeout",
    "services",
    "dependencies",
    "extends",
    "optional",
    "exit_codes",
    "start_in",
    "trigger",
    "exists",
    "changes",
    "paths",
    "key",
    "name",
    "tags",
    "environment",
    "max",
]
SCALARS = [
    "true",
    "null",
    "3",
    "0",
    "-1",
    "201",
    "[]",
    "{}",
    "manual",
    "never",
    "delayed",
    "1h",
    "'$CI_COMMIT_BRANCH == \"main\"'",
    "'$X =~ /a(/'",
    "build",
    "test",
    ".pre",
    "'build 1/2'",
    "'*.yml'",
    "'**/x'",
    "'{a'",
]


def _scalar() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(NAMES + KEYS + SCALARS), st.text(max_size=6).map(json.dumps))


def _value(depth: int = 3) -> st.SearchStrategy[str]:
    if depth == 0:
        return _scalar()
    inner = _value(depth - 1)
    return st.one_of(
        _scalar(),
        st.lists(inner, max_size=3).map(lambda items: "[" + ", ".join(items) + "]"),
        st.lists(st.tuples(st.sampled_from(KEYS + NAMES), inner), max_size=4).map(
            lambda pairs: "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in pairs) + "}"
        ),
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pairs=st.lists(st.tuples(st.sampled_from(NAMES), _value()), max_size=6),
    tag=st.booleans(),
    source=st.sampled_from(["push", "merge_request_event", "schedule"]),
)
def test_load_gitlab_fuzz_raises_only_pipeline_invalid(
    pairs: list[tuple[str, str]], tag: bool, source: str
) -> None:
    text = "".join(f"{json.dumps(k)}: {v}\n" for k, v in pairs)
    context = GitlabContext(tag="v1" if tag else None, source=source)
    try:
        pipeline = parse_gitlab(text, MAIN, name="p", context=context)
    except PipelineInvalid as invalid:
        assert invalid.problems
        assert all(p.file == MAIN and p.line >= 1 and p.column >= 1 for p in invalid.problems)
        return
    assert pipeline.format == "gitlab"


def test_load_gitlab_needs_matrix_value_not_made_positioned() -> None:
    assert problems(
        """
        build:
          stage: build
          script: x
          parallel: {matrix: [{OS: [linux]}]}
        unit:
          script: x
          needs: [{job: build, parallel: {matrix: [{OS: mac}]}}]
        """
    ) == [
        ".gitlab-ci.yml:7:44: job 'unit': needs 'build: [mac]', which the matrix of 'build' "
        "does not make (values must be ones it lists, variables in its order)"
    ]


def test_load_gitlab_workflow_if_sees_expanded_variables() -> None:
    text = """
    variables: {ENV: prod, TARGET: "deploy-$ENV"}
    workflow: {rules: [{if: $TARGET == "deploy-prod"}]}
    j: {script: x}
    """
    assert shape(load(text)) == [("test", ["j"])]


def test_load_gitlab_cycle_through_parallel_jobs_positioned_at_the_need() -> None:
    assert problems("a: {script: x, parallel: 2, needs: [b]}\nb: {script: x, needs: [a]}\n") == [
        ".gitlab-ci.yml:1:37: cyclic dependency: a 1/2 -> b -> a 1/2"
    ]


def test_load_gitlab_edge_stages_always_first_and_last() -> None:
    pipeline = load(
        """
        stages: [.post, build, .pre]
        b: {stage: build, script: x}
        first: {stage: .pre, script: x}
        last: {stage: .post, script: x}
        """
    )
    assert shape(pipeline) == [(".pre", ["first"]), ("build", ["b"]), (".post", ["last"])]


def test_load_gitlab_job_name_with_control_characters_refused_on_one_line() -> None:
    assert problems('"a\\nb": {script: x}\n') == [
        ".gitlab-ci.yml:1:9: job name 'a\\nb' must not contain control characters "
        "(newline, tab, NUL, escape...)"
    ]
