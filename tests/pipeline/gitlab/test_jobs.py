"""One GitLab job's keywords, each read with its type and checked at its position."""

from __future__ import annotations

import textwrap

import pytest

from backend.errors import PipelineInvalid
from backend.pipeline.gitlab.duration import parse_duration
from backend.pipeline.gitlab.front import GitlabContext, parse_gitlab
from backend.pipeline.model import Artifacts, Cache, Job, Service

MAIN = ".gitlab-ci.yml"


def job(text: str, name: str = "j", **context: object) -> Job:
    """Job ``name`` of ``text`` (dedented)."""
    pipeline = parse_gitlab(
        textwrap.dedent(text).lstrip("\n"),
        MAIN,
        name="p",
        context=GitlabContext(**context),  # type: ignore[arg-type]
    )
    return pipeline.job(name)


def problems(text: str) -> list[str]:
    """The problem lines ``text`` raises."""
    with pytest.raises(PipelineInvalid) as raised:
        parse_gitlab(textwrap.dedent(text).lstrip("\n"), MAIN, name="p")
    return [str(p) for p in raised.value.problems]


# -- script ---------------------------------------------------------------------------------


def test_read_job_scripts_strings_lists_and_nested_lists() -> None:
    got = job(
        """
        .setup: &setup [apt-get update, apt-get install -y make]
        j:
          before_script: [*setup, echo ready]
          script: make
          after_script: [echo done]
        """
    )
    assert (got.before_script, got.script, got.after_script) == (
        ["apt-get update", "apt-get install -y make", "echo ready"],
        ["make"],
        ["echo done"],
    )


def test_read_job_script_line_must_be_a_string() -> None:
    assert problems("j:\n  script:\n    - echo a: b\n    - 3\n") == [
        ".gitlab-ci.yml:3:7: job 'j': 'script' lines must be strings, not a mapping "
        "(quote lines that contain ': ')",
        ".gitlab-ci.yml:4:7: job 'j': 'script' lines must be strings, not 3",
    ]


def test_read_job_run_steps_refused() -> None:
    assert problems("j: {run: [{name: a, step: b}]}\n") == [
        ".gitlab-ci.yml:1:4: job 'j': 'script' is required (a job without 'trigger' runs a script)",
        ".gitlab-ci.yml:1:10: job 'j': 'run' (CI/CD steps) is not supported; use 'script'",
    ]


def test_read_job_unknown_key_with_suggestion() -> None:
    assert problems("j: {script: x, artefacts: {paths: [a]}}\n") == [
        ".gitlab-ci.yml:1:16: job 'j': unknown key 'artefacts' (did you mean 'artifacts'?)"
    ]


# -- image and services ---------------------------------------------------------------------


def test_read_job_image_string_with_variables() -> None:
    got = job("variables: {V: '3.20'}\nj: {script: x, image: alpine:$V}\n")
    assert (got.image, got.image_entrypoint) == ("alpine:3.20", None)


def test_read_job_image_mapping_with_entrypoint() -> None:
    got = job('j: {script: x, image: {name: "gcr.io/k/e:v1", entrypoint: [""]}}\n')
    assert (got.image, got.image_entrypoint) == ("gcr.io/k/e:v1", [""])


def test_read_job_image_mapping_needs_name() -> None:
    assert problems("j: {script: x, image: {entrypoint: [sh]}}\n") == [
        ".gitlab-ci.yml:1:23: job 'j': 'image' is missing required key 'name'"
    ]


def test_read_job_default_image_applies() -> None:
    assert job("default: {image: node:20}\nj: {script: x}\n").image == "node:20"


def test_read_job_services_strings_and_mappings() -> None:
    got = job(
        """
        j:
          script: x
          services:
            - postgres:16
            - name: redis:7
              alias: cache
              command: [redis-server, --save, ""]
              variables: {A: "1"}
        """
    )
    assert got.services == [
        Service(name="postgres:16"),
        Service(
            name="redis:7",
            alias="cache",
            command=["redis-server", "--save", ""],
            variables={"A": "1"},
        ),
    ]


def test_read_job_services_entry_needs_name() -> None:
    assert problems("j: {script: x, services: [{alias: db}]}\n") == [
        ".gitlab-ci.yml:1:27: job 'j': 'services' entry is missing required key 'name'"
    ]


# -- when, start_in, allow_failure ------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "run", "reason", "allow_failure"),
    [
        ("on_success", True, None, False),
        ("on_failure", True, None, False),
        ("always", True, None, False),
        ("manual", False, "when: manual (start it with --manual)", True),
        ("never", False, "when: never", False),
    ],
)
def test_read_job_when(when: str, run: bool, reason: str | None, allow_failure: bool) -> None:
    got = job(f"j: {{script: x, when: {when}}}\n")
    assert (got.when, got.run, got.skip_reason, got.allow_failure) == (
        when,
        run,
        reason,
        allow_failure,
    )


def test_read_job_when_delayed_with_start_in() -> None:
    got = job("j: {script: x, when: delayed, start_in: 30 minutes}\n")
    assert (got.when, got.start_in, got.run) == ("delayed", 1800.0, True)


def test_read_job_when_delayed_needs_start_in_of_a_week_at_most() -> None:
    assert problems(
        "j: {script: x, when: delayed}\nk: {script: x, when: delayed, start_in: 8 days}\n"
    ) == [
        ".gitlab-ci.yml:1:16: job 'j': 'when: delayed' needs 'start_in'",
        ".gitlab-ci.yml:2:41: job 'k': 'start_in' must be a duration of 1 week or less "
        "(like '30 minutes'), not '8 days'",
    ]


def test_read_job_start_in_only_when_delayed() -> None:
    assert problems("j: {script: x, start_in: 1h}\n") == [
        ".gitlab-ci.yml:1:16: job 'j': 'start_in' is only for 'when: delayed'"
    ]


def test_read_job_manual_allow_failure_false_kept() -> None:
    assert job("j: {script: x, when: manual, allow_failure: false}\n").allow_failure is False


def test_read_job_allow_failure_exit_codes() -> None:
    got = job("j: {script: x, allow_failure: {exit_codes: [137, 255]}}\n")
    assert (got.allow_failure, got.allow_failure_exit_codes) == (False, [137, 255])
    assert job("j: {script: x, allow_failure: {exit_codes: 1}}\n").allow_failure_exit_codes == [1]


def test_read_job_allow_failure_bad_value() -> None:
    assert problems("j: {script: x, allow_failure: yes}\n") == [
        ".gitlab-ci.yml:1:31: job 'j': 'allow_failure' must be true, false or {exit_codes: ...}, "
        "not 'yes'"
    ]


# -- timeout and retry ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1h 30m", 5400.0),
        ("1h30m", 5400.0),
        ("2 hours", 7200.0),
        ("90 minutes", 5400.0),
        ("3600", 3600.0),
        ("1 hour and 30 minutes", 5400.0),
        ("1:30:00", 5400.0),
        ("1.5h", 5400.0),
        ("3 days", 259200.0),
        ("2 weeks", 1209600.0),
        ("10 parsecs", None),
        ("soon", None),
        ("", None),
    ],
)
def test_parse_duration_chronic_forms(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


def test_read_job_timeout() -> None:
    assert job("j: {script: x, timeout: 3h 30m}\n").timeout == 12600.0
    assert problems("j: {script: x, timeout: 2 months}\n") == [
        ".gitlab-ci.yml:1:25: job 'j': 'timeout' must be a duration of at most a month, like "
        "'1h 30m', '2 hours' or '3600' (seconds), not '2 months'"
    ]


def test_read_job_retry_number_and_mapping() -> None:
    assert job("j: {script: x, retry: 2}\n").retry == 2
    got = job("j: {script: x, retry: {max: 1, when: [script_failure, api_failure]}}\n")
    assert (got.retry, got.retry_when) == (1, ["script_failure", "api_failure"])


def test_read_job_retry_bad_reason_suggested() -> None:
    assert problems("j: {script: x, retry: {max: 1, when: script_failur}}\n") == [
        ".gitlab-ci.yml:1:38: job 'j': 'retry:when' has unknown reason 'script_failur' "
        "(did you mean 'script_failure'?)"
    ]


# -- artifacts and cache ----------------------------------------------------------------------


def test_read_job_artifacts_all_keys() -> None:
    got = job(
        """
        j:
          script: x
          artifacts:
            name: "$CI_JOB_NAME"
            paths: [dist/, "*.whl"]
            exclude: [dist/*.tmp]
            when: always
            expire_in: 1 week
            untracked: true
            expose_as: build output
            reports: {junit: report.xml, coverage_report: {coverage_format: cobertura, path: c.xml}}
        """
    )
    assert got.artifacts == ["dist/", "*.whl"]
    assert got.artifacts_options == Artifacts(
        exclude=["dist/*.tmp"],
        when="always",
        expire_in="1 week",
        untracked=True,
        name="$CI_JOB_NAME",
        reports={"junit": ["report.xml"], "coverage_report": ["c.xml"]},
    )


def test_read_job_artifacts_bad_values() -> None:
    assert problems("j: {script: x, artifacts: {paths: [3], when: later, expire_in: soon}}\n") == [
        ".gitlab-ci.yml:1:36: job 'j': 'artifacts:paths' entries must be strings, not 3",
        ".gitlab-ci.yml:1:46: job 'j': 'artifacts:when' must be one of on_success, on_failure, "
        "always, not 'later'",
        ".gitlab-ci.yml:1:64: job 'j': 'artifacts:expire_in' must be a duration or 'never', "
        "not 'soon'",
    ]


def test_read_job_cache_one_and_list() -> None:
    got = job(
        """
        j:
          script: x
          cache:
            - key: {files: [poetry.lock], prefix: py}
              paths: [.venv/]
              policy: pull
            - key: $CI_COMMIT_REF_SLUG
              paths: [node_modules/]
              when: always
              untracked: true
              fallback_keys: [main]
        """
    )
    assert got.cache == [
        Cache(
            key="default",
            key_files=["poetry.lock"],
            key_prefix="py",
            paths=[".venv/"],
            policy="pull",
        ),
        Cache(
            key="$CI_COMMIT_REF_SLUG",
            paths=["node_modules/"],
            when="always",
            untracked=True,
            fallback_keys=["main"],
        ),
    ]


def test_read_job_cache_bad_values() -> None:
    assert problems("j: {script: x, cache: {key: a/b, policy: pul}}\n") == [
        ".gitlab-ci.yml:1:29: job 'j': 'cache:key' must not contain '/' nor be '.' or '..'",
        ".gitlab-ci.yml:1:42: job 'j': 'cache:policy' must be one of pull, push, pull-push, "
        "not 'pul'",
    ]


# -- the rest ---------------------------------------------------------------------------------


def test_read_job_interruptible() -> None:
    assert job("j: {script: x, interruptible: true}\n").interruptible is True


def test_read_job_environment_string_and_mapping() -> None:
    assert job("j: {script: x, environment: staging}\n").environment == "staging"
    assert (
        job("j: {script: x, environment: {name: prod, url: 'https://x'}}\n").environment == "prod"
    )


def test_read_job_ignored_keywords_checked_for_shape() -> None:
    assert problems("j: {script: x, tags: {a: 1}, release: v1, pages: 3}\n") == [
        ".gitlab-ci.yml:1:22: job 'j': 'tags' must be a string or a list of strings, not a mapping",
        ".gitlab-ci.yml:1:39: job 'j': 'release' must be a mapping, not 'v1'",
        ".gitlab-ci.yml:1:50: job 'j': 'pages' must be a mapping or true/false, not 3",
    ]


def test_read_job_needs_entry_shapes() -> None:
    assert problems(
        "a: {script: x}\nj: {script: x, needs: [{optional: true}, {pipeline: $PARENT}, 3]}\n"
    ) == [
        ".gitlab-ci.yml:2:24: job 'j': 'needs' entry is missing required key 'job'",
        ".gitlab-ci.yml:2:43: job 'j': needs:pipeline needs a GitLab server",
        ".gitlab-ci.yml:2:63: job 'j': 'needs' entries must be a non-empty string, not 3",
    ]


def test_read_job_only_with_rules_refused() -> None:
    assert problems("j: {script: x, rules: [{when: always}], only: [main]}\n") == [
        ".gitlab-ci.yml:1:41: job 'j': 'only' may not be used with 'rules'"
    ]


def test_read_job_keyword_set_to_null_is_not_set() -> None:
    got = job("j: {script: x, dependencies: null, image: null, needs: ~}\n")
    assert (got.dependencies, got.image, got.dag) == (
        None,
        "docker.io/library/ubuntu:latest",
        False,
    )
