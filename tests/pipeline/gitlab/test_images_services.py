"""GitLab ``image``/``services`` keywords the runner acts on: pull_policy, names with variables."""

from __future__ import annotations

import textwrap

import pytest

from backend.errors import PipelineInvalid
from backend.pipeline.gitlab.front import parse_gitlab
from backend.pipeline.model import Job

MAIN = ".gitlab-ci.yml"


def job(text: str, name: str = "j") -> Job:
    """Job ``name`` of ``text`` (dedented)."""
    return parse_gitlab(textwrap.dedent(text).lstrip("\n"), MAIN, name="p").job(name)


def problems(text: str) -> list[str]:
    """The problem lines ``text`` raises."""
    with pytest.raises(PipelineInvalid) as raised:
        parse_gitlab(textwrap.dedent(text).lstrip("\n"), MAIN, name="p")
    return [str(p) for p in raised.value.problems]


def test_image_pull_policy_string_or_list_in_order() -> None:
    one = job("j: {image: {name: a, pull_policy: never}, script: x}\n")
    two = job("j: {image: {name: a, pull_policy: [if-not-present, always]}, script: x}\n")

    assert (one.pull_policy, two.pull_policy) == (["never"], ["if-not-present", "always"])


def test_image_pull_policy_default_is_empty_for_run_pull() -> None:
    assert job("j: {image: a, script: x}\n").pull_policy == []


def test_image_pull_policy_from_default_reaches_job() -> None:
    got = job("default: {image: {name: a, pull_policy: never}}\nj: {script: x}\n")

    assert (got.image, got.pull_policy) == ("a", ["never"])


def test_image_pull_policy_unknown_value_is_positioned_error() -> None:
    assert problems("j: {image: {name: a, pull_policy: sometimes}, script: x}\n") == [
        ".gitlab-ci.yml:1:35: job 'j': 'image:pull_policy' must be one of always, "
        "if-not-present, never, not 'sometimes'"
    ]


def test_services_pull_policy_unknown_and_empty_list_are_errors() -> None:
    found = problems(
        """
        j:
          services:
            - {name: a, pull_policy: [always, 3]}
            - {name: b, pull_policy: []}
          script: x
        """
    )

    assert found == [
        ".gitlab-ci.yml:3:39: job 'j': 'services:pull_policy' must be a non-empty string, not 3",
        ".gitlab-ci.yml:4:30: job 'j': 'services:pull_policy' must not be an empty list",
    ]


def test_image_and_services_names_expand_job_variables() -> None:
    got = job(
        """
        variables: {REG: registry.local:5000}
        j:
          variables: {TAG: "16"}
          image: $REG/tools/build:${TAG}
          services:
            - name: $REG/postgres:$TAG
              alias: db
          script: x
        """
    )

    assert got.image == "registry.local:5000/tools/build:16"
    assert [(s.name, s.alias) for s in got.services] == [("registry.local:5000/postgres:16", "db")]
