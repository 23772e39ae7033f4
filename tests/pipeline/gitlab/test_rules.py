"""rules:, only:/except: and rules:exists globs, for branch, tag and merge request pipelines."""

from __future__ import annotations

import textwrap

import pytest

from backend.errors import PipelineInvalid
from backend.pipeline.gitlab.front import GitlabContext, load_gitlab, parse_gitlab
from backend.pipeline.gitlab.include import DictSource
from backend.pipeline.gitlab.rules import glob_regex
from backend.pipeline.model import Job, Pipeline

MAIN = ".gitlab-ci.yml"
BRANCH = GitlabContext(branch="feature")
MAIN_BRANCH = GitlabContext()
TAG = GitlabContext(branch=None, tag="v1.2")
MR = GitlabContext(branch="feature", source="merge_request_event")
SCHEDULE = GitlabContext(source="schedule")


def load(text: str, context: GitlabContext = MAIN_BRANCH) -> Pipeline:
    """The pipeline of ``text`` (dedented) for ``context``."""
    return parse_gitlab(textwrap.dedent(text).lstrip("\n"), MAIN, name="p", context=context)


def job(text: str, context: GitlabContext = MAIN_BRANCH, name: str = "j") -> Job:
    """Job ``name`` of ``text`` for ``context``."""
    return load(text, context).job(name)


def problems(text: str) -> list[str]:
    """The problem lines ``text`` raises."""
    with pytest.raises(PipelineInvalid) as raised:
        load(text)
    return [str(p) for p in raised.value.problems]


# -- rules: outcomes by pipeline ---------------------------------------------------------------

RULES = """
j:
  script: x
  rules:
    - if: $CI_PIPELINE_SOURCE == "merge_request_event"
      when: manual
    - if: $CI_COMMIT_TAG =~ /^v\\d+/
      when: delayed
      start_in: 5 minutes
    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH
    - if: $CI_PIPELINE_SOURCE == "schedule"
      when: never
"""


@pytest.mark.parametrize(
    ("context", "when", "run", "reason", "start_in"),
    [
        (MR, "manual", False, "when: manual (start it with --manual)", None),
        (TAG, "delayed", True, None, 300.0),
        (MAIN_BRANCH, "on_success", True, None, None),
        (BRANCH, "never", False, "rules: no rule matches branch 'feature'", None),
        (SCHEDULE, "on_success", True, None, None),  # rule 3 holds first on main
        (
            GitlabContext(branch="dev", source="schedule"),
            "never",
            False,
            "rules: rule 4 says never",
            None,
        ),
    ],
)
def test_rules_first_match_decides(
    context: GitlabContext, when: str, run: bool, reason: str | None, start_in: float | None
) -> None:
    got = job(RULES, context)
    assert (got.when, got.run, got.skip_reason, got.start_in) == (when, run, reason, start_in)


def test_rules_merge_request_pipeline_has_no_commit_branch() -> None:
    text = (
        "j: {script: x, rules: [{if: $CI_COMMIT_BRANCH},"
        " {if: $CI_MERGE_REQUEST_SOURCE_BRANCH_NAME == 'feature', when: always}]}\n"
    )
    assert job(text, MR).when == "always"
    assert job(text, BRANCH).when == "on_success"


def test_rules_manual_keeps_allow_failure_false_unless_said() -> None:
    text = (
        "j: {script: x, rules: [{when: manual}]}\n"
        "k: {script: x, rules: [{when: manual, allow_failure: true}]}\n"
    )
    pipeline = load(text)
    assert [(j.when, j.allow_failure) for j in pipeline.jobs] == [
        ("manual", False),
        ("manual", True),
    ]


def test_rules_job_when_is_the_default_of_a_rule() -> None:
    got = job("j: {script: x, when: manual, rules: [{if: $CI_COMMIT_BRANCH}]}\n")
    assert (got.when, got.allow_failure) == ("manual", True)


def test_rules_allow_failure_overrides_exit_codes() -> None:
    got = job("j: {script: x, allow_failure: {exit_codes: [3]}, rules: [{allow_failure: true}]}\n")
    assert (got.allow_failure, got.allow_failure_exit_codes) == (True, [])


def test_rules_variables_override_job_variables() -> None:
    got = job(
        """
        variables: {LEVEL: global}
        j:
          script: x
          variables: {LEVEL: job, OTHER: "$LEVEL!"}
          rules:
            - if: $LEVEL == "job"
              variables: {LEVEL: rule}
        """
    )
    assert got.variables == {"LEVEL": "rule", "OTHER": "rule!"}


def test_rules_needs_replace_job_needs() -> None:
    text = """
    a: {stage: build, script: x}
    b: {stage: build, script: x}
    j:
      script: x
      needs: [a]
      rules:
        - if: $CI_COMMIT_TAG
          needs: [b]
        - when: on_success
    """
    assert job(text, TAG).needs == ["b"]
    assert job(text).needs == ["a"]


def test_rules_interruptible_overrides_job() -> None:
    assert job("j: {script: x, rules: [{interruptible: true}]}\n").interruptible is True


def test_rules_changes_hold_and_are_noted() -> None:
    pipeline = load("j: {script: x, rules: [{changes: [src/**/*], when: manual}]}\n")
    assert pipeline.job("j").when == "manual"
    assert pipeline.ignored == [
        "rules:changes: there is no earlier commit to compare with, so every changes clause "
        "holds (GitLab's behaviour for a new branch or a pipeline without a push event)"
    ]


def test_rules_changes_with_compare_to_accepted() -> None:
    got = job("j: {script: x, rules: [{changes: {paths: [a.txt], compare_to: main}}]}\n")
    assert got.run is True


def test_rules_bad_entries_positioned() -> None:
    assert problems(
        """
        j:
          script: x
          rules:
            - iff: $A
            - if: $A ==
            - when: sometimes
            - exists: {project: a/b, paths: [x]}
            - just-a-string
        """
    ) == [
        ".gitlab-ci.yml:4:7: job 'j': unknown key 'iff' in rules (did you mean 'if'?)",
        ".gitlab-ci.yml:5:11: job 'j': invalid rules:if expression: expected a value after "
        "'==' (column 6)",
        ".gitlab-ci.yml:6:13: job 'j': rules:when must be one of on_success, on_failure, "
        "always, manual, delayed, never, not 'sometimes'",
        ".gitlab-ci.yml:7:16: job 'j': rules:exists:project needs a GitLab server; cicd sees "
        "this repository only",
        ".gitlab-ci.yml:8:7: job 'j': rules entries must be mappings, not 'just-a-string'",
    ]


def test_rules_delayed_needs_start_in() -> None:
    assert problems("j: {script: x, rules: [{when: delayed}]}\n") == [
        ".gitlab-ci.yml:1:24: job 'j': rules: 'when: delayed' needs 'start_in'"
    ]


# -- rules:exists -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("Dockerfile", "Dockerfile", True),
        ("*.md", "README.md", True),
        ("*.md", "docs/a.md", False),
        ("**/*.md", "README.md", True),
        ("**/*.md", "docs/deep/a.md", True),
        ("docs/**/a.md", "docs/a.md", True),
        ("*", ".hidden", True),
        ("src/?.py", "src/a.py", True),
        ("src/[ab].py", "src/c.py", False),
        ("src/[!ab].py", "src/c.py", True),
        ("{a,b}/x.txt", "b/x.txt", True),
        ("{a,b/x.txt", "{a,b/x.txt", True),
        ("a\\*b", "a*b", True),
    ],
)
def test_glob_regex_ruby_fnmatch(pattern: str, path: str, matches: bool) -> None:
    assert bool(glob_regex(pattern).fullmatch(path)) is matches


def test_rules_exists_against_the_repository_files() -> None:
    source = DictSource(
        {
            MAIN: textwrap.dedent(
                """
                variables: {DIR: docker}
                docker: {script: x, rules: [{exists: [$DIR/Dockerfile]}]}
                helm: {script: x, rules: [{exists: {paths: ["charts/**/Chart.yaml"]}}]}
                """
            ),
            "docker/Dockerfile": "FROM alpine\n",
        }
    )
    pipeline = load_gitlab(MAIN, source, name="p")
    assert [(j.name, j.run) for j in pipeline.jobs] == [("docker", True), ("helm", False)]


# -- only / except ---------------------------------------------------------------------------

ONLY = """
plain: {script: x}
branches: {script: x, only: [branches]}
tags: {script: x, only: [tags]}
main: {script: x, only: [main]}
release: {script: x, only: ['/^v\\d/']}
mrs: {script: x, only: [merge_requests]}
schedules: {script: x, only: {refs: [schedules]}}
not_main: {script: x, except: [main]}
var: {script: x, only: {variables: [$CI_COMMIT_TAG]}}
both: {script: x, only: {refs: [branches], variables: ['$CI_COMMIT_BRANCH == "main"']}}
"""


@pytest.mark.parametrize(
    ("context", "running"),
    [
        (MAIN_BRANCH, ["plain", "branches", "main", "both"]),
        (BRANCH, ["plain", "branches", "not_main"]),
        (TAG, ["plain", "tags", "release", "not_main", "var"]),
        (MR, ["mrs"]),  # the default only: [branches, tags] leaves the rest out
        (SCHEDULE, ["plain", "branches", "main", "schedules", "both"]),
    ],
)
def test_only_except_by_pipeline(context: GitlabContext, running: list[str]) -> None:
    pipeline = load(ONLY, context)
    assert [j.name for j in pipeline.jobs if j.run] == running


def test_only_except_skip_reasons() -> None:
    pipeline = load(ONLY, BRANCH)
    assert pipeline.job("main").skip_reason == "only: does not match branch 'feature'"
    assert load(ONLY).job("not_main").skip_reason == "except: matches branch 'main'"


def test_only_except_bad_values_positioned() -> None:
    assert problems(
        "j: {script: x, only: {refz: [main]}}\n"
        "k: {script: x, except: {variables: ['$A =='], kubernetes: on}}\n"
    ) == [
        ".gitlab-ci.yml:1:23: job 'j': unknown key 'refz' in only (did you mean 'refs'?)",
        ".gitlab-ci.yml:2:37: job 'k': invalid except:variables expression: expected a value "
        "after '==' (column 6)",
        ".gitlab-ci.yml:2:59: job 'k': except:kubernetes must be 'active', not 'on'",
    ]


def test_only_regex_engine_refusal_positioned() -> None:
    assert problems("j: {script: x, only: ['/\\p{Greek}/']}\n")[0].startswith(
        ".gitlab-ci.yml:1:22: job 'j': only/except pattern"
    )


def test_only_default_dropped_when_workflow_rules_exist() -> None:
    text = "workflow: {rules: [{when: always}]}\nj: {script: x}\n"
    assert job(text, MR).run is True
    assert job("j: {script: x}\n", MR).skip_reason == (
        "only: does not match merge request from branch 'feature'"
    )


def test_only_refs_restricted_to_a_project() -> None:
    text = "j: {script: x, only: [main@group/project]}\n"
    assert job(text, GitlabContext(project_path="group/project")).run is True
    assert job(text, GitlabContext(project_path="fork/project")).run is False


def test_rules_job_left_out_is_never_even_if_manual() -> None:
    got = job("j: {script: x, when: manual, only: [tags]}\n")
    assert (got.when, got.run, got.skip_reason) == (
        "never",
        False,
        "only: does not match branch 'main'",
    )
