"""GitLab ``only:``/``except:``: refs keywords, names, /regex/ entries, @project, variables."""

from __future__ import annotations

import pytest

from backend.pipeline.gitlab.expressions import ExpressionError
from backend.pipeline.gitlab.refs import DEFAULT_ONLY, matches_refs, matches_variables

BRANCH = {"ref": "main", "is_tag": False, "is_branch": True, "source": "push"}
FEATURE = {"ref": "feature/login", "is_tag": False, "is_branch": True, "source": "push"}
TAG = {"ref": "v1.2.3", "is_tag": True, "is_branch": False, "source": "push"}
MR = {"ref": "feature/login", "is_tag": False, "is_branch": False, "source": "merge_request_event"}
SCHEDULE = {"ref": "main", "is_tag": False, "is_branch": True, "source": "schedule"}
EXTERNAL_PR = {
    "ref": "main",
    "is_tag": False,
    "is_branch": False,
    "source": "external_pull_request_event",
}


def _source(source: str) -> dict[str, object]:
    return {**BRANCH, "is_branch": False, "source": source}


REFS_CASES = [
    # keywords for the kind of ref
    (["branches"], BRANCH, True),
    (["branches"], TAG, False),
    (["tags"], TAG, True),
    (["tags"], BRANCH, False),
    (["branches"], MR, False),
    (["tags"], MR, False),
    (list(DEFAULT_ONLY), BRANCH, True),
    (list(DEFAULT_ONLY), TAG, True),
    (list(DEFAULT_ONLY), MR, False),
    # keywords for the pipeline source: as written, or pluralised without _event
    (["pushes"], BRANCH, True),
    (["push"], BRANCH, True),
    (["pushes"], SCHEDULE, False),
    (["schedules"], SCHEDULE, True),
    (["merge_requests"], MR, True),
    (["merge_requests"], BRANCH, False),
    (["external_pull_requests"], EXTERNAL_PR, True),
    (["merge_requests"], _source("external_merge_request_event"), True),
    (["api"], _source("api"), True),
    (["web"], _source("web"), True),
    (["external"], _source("external"), True),
    (["triggers"], _source("trigger"), True),
    (["pipelines"], _source("pipeline"), True),
    (["chat"], _source("chat"), True),
    (["web"], _source("api"), False),
    (["api"], BRANCH, False),
    (["schedules"], _source(""), False),
    # plain names compare whole
    (["main"], BRANCH, True),
    (["mai"], BRANCH, False),
    (["Main"], BRANCH, False),
    (["feature/login"], FEATURE, True),
    (["v1.2.3"], TAG, True),
    (["feature/login"], MR, False),  # names only in branch and tag pipelines
    # /regex/ entries: RE2, unanchored, flags
    (["/^feature\\//"], FEATURE, True),
    (["/^feature-/"], FEATURE, False),
    (["/login/"], FEATURE, True),
    (["/^v\\d+\\.\\d+\\.\\d+$/"], TAG, True),
    (["/^release/"], TAG, False),
    (["/^MAIN$/i"], BRANCH, True),
    (["/^MAIN$/"], BRANCH, False),
    (["/^feature/"], MR, False),
    (["/(a+)+$/"], {**BRANCH, "ref": "a" * 5000 + "!"}, False),
    (["/ma/x"], BRANCH, False),  # not /regex/flags: a name, compared whole
    (["/ma/x"], {**BRANCH, "ref": "/ma/x"}, True),
    # any entry matching is enough; none is none
    (["tags", "/^ma/"], BRANCH, True),
    (["tags", "develop"], BRANCH, False),
    ([], BRANCH, False),
]


@pytest.mark.parametrize(("patterns", "pipeline", "expected"), REFS_CASES)
def test_matches_refs_table(patterns: list[str], pipeline: dict, expected: bool) -> None:
    assert matches_refs(patterns, **pipeline) is expected


PROJECT_CASES = [
    # (patterns, project_path, expected) on the main branch
    (["main@group/project"], "group/project", True),
    (["main@group/project"], "fork/project", False),
    (["main@group/project"], None, True),  # project unknown: suffix ignored
    (["branches@group/project"], "fork/project", False),
    (["branches@group/project", "main"], "fork/project", True),
    (["/^ma/@group/project"], "group/project", True),
    (["/^ma@in/"], None, False),  # split at the first @ as GitLab: "/^ma" is a name
    (["/^ma\\x40in/"], None, False),
]


@pytest.mark.parametrize(("patterns", "project_path", "expected"), PROJECT_CASES)
def test_matches_refs_project_suffix_table(
    patterns: list[str], project_path: str | None, expected: bool
) -> None:
    assert matches_refs(patterns, project_path=project_path, **BRANCH) is expected


def test_matches_refs_at_sign_in_ref_through_hex_escape() -> None:
    assert matches_refs(["/^ma\\x40in$/"], **{**BRANCH, "ref": "ma@in"}) is True


def test_matches_refs_unsupported_regex_is_refused() -> None:
    with pytest.raises(ExpressionError) as caught:
        matches_refs(["/^(?!main)/"], **BRANCH)
    assert str(caught.value) == (
        "only/except pattern '/^(?!main)/': look-around is not supported by RE2 (column 3)"
    )


VARIABLES_CASES = [
    (["$RELEASE"], {"RELEASE": "yes"}, True),
    (["$RELEASE"], {"RELEASE": ""}, False),
    (["$RELEASE"], {}, False),
    (['$RELEASE == "staging"', '$RELEASE == "prod"'], {"RELEASE": "prod"}, True),
    (['$RELEASE == "staging"', '$RELEASE == "prod"'], {"RELEASE": "dev"}, False),
    (["$CI_COMMIT_MESSAGE =~ /skip-e2e/"], {"CI_COMMIT_MESSAGE": "x\nskip-e2e"}, True),
    ([], {"RELEASE": "yes"}, False),
]


@pytest.mark.parametrize(("expressions", "variables", "expected"), VARIABLES_CASES)
def test_matches_variables_table(
    expressions: list[str], variables: dict[str, str], expected: bool
) -> None:
    assert matches_variables(expressions, variables) is expected


def test_matches_variables_invalid_expression_raises() -> None:
    with pytest.raises(ExpressionError) as caught:
        matches_variables(["$A", "$A = 1"], {"A": ""})
    assert (caught.value.message, caught.value.column) == ("unexpected character '='", 4)
