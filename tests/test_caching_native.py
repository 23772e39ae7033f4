"""The native format's ``cache:``: read into the model as GitLab's, refused where GitLab refuses.

The JSON Schema (for editors) must agree with validation on each document here.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

import jsonschema
import pytest

from backend.errors import PipelineInvalid
from backend.pipeline import parse_pipeline
from backend.pipeline.model import Cache
from backend.pipeline.schema import pipeline_schema

VALIDATOR = jsonschema.Draft202012Validator(pipeline_schema())


def _doc(cache: Any) -> dict[str, Any]:
    return {
        "pipeline": {"name": "demo"},
        "jobs": [{"name": "a", "stage": "build", "script": "true", "cache": cache}],
    }


def _problems(cache: Any) -> list[str]:
    with pytest.raises(PipelineInvalid) as info:
        parse_pipeline(json.dumps(_doc(cache)), "ci.yaml")
    return [problem.message for problem in info.value.problems]


def test_caching_native_full_entry_read_into_model() -> None:
    text = textwrap.dedent(
        """
        pipeline: {name: demo}
        jobs:
          - name: a
            stage: build
            script: make
            cache:
              - key: pip-$CI_COMMIT_REF_SLUG
                paths: [.cache/pip/]
                policy: pull
                when: always
                untracked: true
                fallback_keys: [pip-main]
              - key: {files: [requirements.txt, setup.cfg], prefix: deps}
                paths: [venv/]
              - {key: 3, paths: [x]}
        """
    )
    job = parse_pipeline(text, "ci.yaml").job("a")
    assert job.cache == [
        Cache(
            key="pip-$CI_COMMIT_REF_SLUG",
            paths=[".cache/pip/"],
            policy="pull",
            when="always",
            untracked=True,
            fallback_keys=["pip-main"],
        ),
        Cache(key_files=["requirements.txt", "setup.cfg"], key_prefix="deps", paths=["venv/"]),
        Cache(key="3", paths=["x"]),
    ]
    one = parse_pipeline(json.dumps(_doc({"paths": ["a"]})), "ci.yaml").job("a")
    assert one.cache == [Cache(paths=["a"])]  # key "default", pull-push, on_success


@pytest.mark.parametrize(
    ("cache", "message"),
    [
        ({"key": "a/b"}, "job 'a': 'cache:key' must not contain '/' nor be made only of dots, "
                         "not 'a/b'"),
        ({"key": ".."}, "job 'a': 'cache:key' must not contain '/' nor be made only of dots, "
                        "not '..'"),
        ({"key": "x%2Fy"}, "job 'a': 'cache:key' must not contain '/' nor be made only of dots, "
                           "not 'x%2Fy'"),
        ({"key": {"files": []}}, "job 'a': 'cache:key:files' must list one or two files"),
        ({"key": {"files": ["a", "b", "c"]}}, "job 'a': 'cache:key:files' must list one or two "
                                              "files"),
        ({"key": {"prefix": "p"}}, "job 'a': 'cache:key' as a mapping needs 'files'"),
        ({"key": True}, "job 'a': 'cache:key' must be a string or {files, prefix}, not true"),
        ({"policy": "pushy"}, "job 'a': 'cache:policy' must be one of pull, push, pull-push, "
                              "not 'pushy'"),
        ({"when": "never"}, "job 'a': 'cache:when' must be one of on_success, on_failure, "
                            "always, not 'never'"),
        ({"paths": "vendor/"}, "job 'a': 'cache:paths' must be a list of non-empty strings, "
                               "not 'vendor/'"),
        ({"untracked": "yes"}, "job 'a': 'cache:untracked' must be true or false, not 'yes'"),
        ({"unprotect": True}, "unknown key 'unprotect' in job 'a': 'cache' (allowed: key, "
                              "paths, policy, when, untracked, fallback_keys)"),
        ([{"paths": ["a"]}] * 5, "job 'a': 'cache' lists 5 caches; the limit is 4"),
        (["vendor/"], "job 'a': 'cache' entries must be mappings, not 'vendor/'"),
    ],
)  # fmt: skip
def test_caching_native_refuses_bad_entry(cache: Any, message: str) -> None:
    assert _problems(cache) == [message]
    assert list(VALIDATOR.iter_errors(_doc(cache))), "the schema accepts what check refuses"


@pytest.mark.parametrize(
    "cache",
    [
        {"key": "k", "paths": ["a"]},
        [{"key": "k1"}, {"key": {"files": ["f"]}, "policy": "push"}],
        {"key": "..a", "fallback_keys": ["b"]},
        {"key": 7},
    ],
)
def test_caching_native_schema_accepts_what_check_accepts(cache: Any) -> None:
    parse_pipeline(json.dumps(_doc(cache)), "ci.yaml")
    assert list(VALIDATOR.iter_errors(_doc(cache))) == []
