"""GitLab variables: definitions, expansion, resolution, precedence, slugs, predefined ones."""

from __future__ import annotations

import textwrap
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.pipeline.gitlab.variables import (
    MAX_VALUE,
    Variable,
    expand,
    merge,
    predefined,
    read_variables,
    reference_cycles,
    references,
    resolve,
    slugify,
)
from backend.pipeline.loader import Map, parse_yaml

FILE = ".gitlab-ci.yml"


def read(text: str, *, job: bool = False) -> tuple[dict[str, Variable], list[str]]:
    node, problems = parse_yaml(textwrap.dedent(text).lstrip("\n"), FILE)
    assert not problems and isinstance(node, Map)
    variables = node.get("variables")
    assert variables is not None
    found, messages = read_variables(variables, FILE, "job 'x': " if job else "", job=job)
    return found, [str(p) for p in messages]


# -- definitions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A: hello", Variable("hello")),
        ("A: ''", Variable("")),
        ("A: 5432", Variable("5432")),
        ("A: 1.10", Variable("1.10")),  # as written, not 1.1
        ("A: 0x1F", Variable("0x1F")),
        ("A: true", Variable("true")),
        ("A: 'yes'", Variable("yes")),
        ("A: {value: x}", Variable("x")),
        ("A: {value: 2, expand: false}", Variable("2", expand=False)),
        ("A: {expand: true}", Variable("")),  # GitLab: no value is an empty one
        (
            "A: {value: b, description: pick, options: [a, b]}",
            Variable("b", description="pick", options=("a", "b")),
        ),
    ],
)
def test_read_variables_forms(text: str, expected: Variable) -> None:
    assert read(f"variables:\n  {text}\n") == ({"A": expected}, [])


def test_read_variables_keeps_file_order() -> None:
    found, _ = read("variables:\n  B: 1\n  A: 2\n  _C9: 3\n")
    assert list(found) == ["B", "A", "_C9"]


@pytest.mark.parametrize(
    ("text", "job", "expected"),
    [
        (
            "variables: [A]",
            False,
            "1:12: 'variables' must be a mapping of names to values, not a list",
        ),
        (
            "variables:\n  1A: x",
            False,
            "2:3: variable name '1A' must be letters, digits and '_', not starting with a digit",
        ),
        (
            "variables:\n  MY-VAR: x",
            True,
            "2:3: job 'x': variable name 'MY-VAR' must be letters, digits and '_', "
            "not starting with a digit",
        ),
        (
            "variables:\n  A:",
            False,
            "2:5: variable 'A' must be a string, a number or a mapping with 'value', not null",
        ),
        (
            "variables:\n  A: [x]",
            False,
            "2:6: variable 'A' must be a string, a number or a mapping with 'value', not a list",
        ),
        (
            "variables:\n  A: {value: x, description: d}",
            True,
            "2:17: job 'x': variable 'A': unknown key 'description' (allowed in a job: "
            "'value', 'expand')",
        ),
        (
            "variables:\n  A: {value: x, secret: true}",
            False,
            "2:17: variable 'A': unknown key 'secret' (allowed in variable definitions: "
            "'value', 'description', 'expand', 'options')",
        ),
        (
            "variables:\n  A: {value: c, options: [a, b]}",
            False,
            "2:14: variable 'A': value 'c' must be one of its 'options'",
        ),
        (
            "variables:\n  A: {value: a, options: a}",
            False,
            "2:26: variable 'A': 'options' must be a list of strings, not 'a'",
        ),
        (
            "variables:\n  A: {value: x, expand: 'no'}",
            False,
            "2:25: variable 'A': 'expand' must be true or false, not 'no'",
        ),
        (
            "variables:\n  A: {value: [x]}",
            False,
            "2:14: variable 'A': 'value' must be a string or a number, not a list",
        ),
        (
            "variables:\n  A: {value: x, description: [d]}",
            False,
            "2:30: variable 'A': 'description' must be a string, not a list",
        ),
    ],
)
def test_read_variables_problems(text: str, job: bool, expected: str) -> None:
    assert read(text + "\n", job=job) == ({}, [f"{FILE}:{expected}"])


# -- expand -----------------------------------------------------------------------------------

VALUES = {"A": "a", "AB": "ab", "B": "$A", "EMPTY": ""}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$A", "a"),
        ("${A}", "a"),
        ("${A}B", "aB"),
        ("$AB", "ab"),  # the longest name
        ("$A-B", "a-B"),
        ("x$A/y", "xa/y"),
        ("$B", "$A"),  # values are final: never scanned again
        ("$UNDEFINED", ""),
        ("[$UNDEFINED]", "[]"),
        ("$EMPTY.", "."),
        ("$$", "$"),
        ("$$A", "$A"),  # the escape wins over the reference
        ("$$$A", "$a"),
        ("$$$$A", "$$A"),
        ("%A%", "%A%"),  # Windows syntax: not on Linux runners
        ("$", "$"),
        ("a$", "a$"),
        ("$1", "$1"),
        ("${A", "${A"),
        ("${}", "${}"),
        ("${1A}", "${1A}"),
        ("$ A", "$ A"),
        ("no reference", "no reference"),
    ],
)
def test_expand_rules(text: str, expected: str) -> None:
    assert expand(text, VALUES) == expected


def test_expand_keep_undefined_leaves_unknown_references_as_written() -> None:
    assert expand("$A/${NOPE}/$NOPE/$$", VALUES, keep_undefined=True) == "a/${NOPE}/$NOPE/$"


def test_expand_image_name() -> None:
    values = {"REGISTRY": "registry.example.com", "TAG": "1.2"}
    assert (
        expand("$REGISTRY/team/app:${TAG}-slim", values) == "registry.example.com/team/app:1.2-slim"
    )


# -- resolve ----------------------------------------------------------------------------------


def test_resolve_expands_references_whatever_the_order_of_definition() -> None:
    definitions = {
        "URL": Variable("https://$HOST:${PORT}/x"),
        "HOST": Variable("$NAME.example.com"),
        "NAME": Variable("api"),
        "PORT": Variable("8080"),
    }
    assert resolve(definitions) == {
        "URL": "https://api.example.com:8080/x",
        "HOST": "api.example.com",
        "NAME": "api",
        "PORT": "8080",
    }


def test_resolve_expand_false_keeps_the_value_as_written() -> None:
    definitions = {
        "RAW": Variable("$NAME and $$", expand=False),
        "USES_RAW": Variable("[$RAW]"),
        "NAME": Variable("n"),
    }
    # a raw value is inserted as it is: its $NAME is not expanded through USES_RAW either
    assert resolve(definitions) == {
        "RAW": "$NAME and $$",
        "USES_RAW": "[$NAME and $$]",
        "NAME": "n",
    }


def test_resolve_escaped_dollar_is_not_expanded_again() -> None:
    definitions = {"A": Variable("$B"), "B": Variable("$$C"), "C": Variable("c")}
    assert resolve(definitions) == {"A": "$C", "B": "$C", "C": "c"}


def test_resolve_undefined_reference_is_empty() -> None:
    assert resolve({"A": Variable("x${MISSING}y")}) == {"A": "xy"}


def test_resolve_cycle_keeps_values_as_written() -> None:
    definitions = {
        "A": Variable("$B"),
        "B": Variable("$A"),
        "C": Variable("<$A>"),  # refers to a cycle: kept as written too
        "PATH": Variable("/opt/bin:$PATH"),  # a self-reference is a cycle
        "D": Variable("$E"),
        "E": Variable("e"),
    }
    assert resolve(definitions) == {
        "A": "$B",
        "B": "$A",
        "C": "<$A>",
        "PATH": "/opt/bin:$PATH",
        "D": "e",
        "E": "e",
    }


def test_resolve_deep_chain_resolves_without_recursion() -> None:
    definitions = {f"V{i}": Variable(f"$V{i + 1}") for i in range(5000)}
    definitions["V5000"] = Variable("end")
    assert set(resolve(definitions).values()) == {"end"}


def test_resolve_doubling_values_stop_at_max_value() -> None:
    definitions = {f"V{i}": Variable(f"$V{i + 1}$V{i + 1}") for i in range(40)}
    definitions["V40"] = Variable("x")
    started = time.monotonic()
    result = resolve(definitions)
    assert time.monotonic() - started < 5
    assert result["V40"] == "x"
    assert result["V24"] == "x" * 2**16  # 64 KiB: within the limit
    assert result["V23"] == "x" * 2**17  # 128 KiB: exactly the limit
    assert result["V22"] == "$V23$V23"  # 256 KiB would pass it: kept as written
    assert max(len(v) for v in result.values()) == MAX_VALUE


def test_reference_cycles_names_each_cycle_in_definition_order() -> None:
    definitions = {
        "A": Variable("$C"),
        "B": Variable("$A"),
        "C": Variable("$B $D"),
        "D": Variable("d"),
        "P": Variable("$P"),  # GitLab's sort lets a self-reference through
        "RAW": Variable("$RAW", expand=False),  # raw: never expanded, so no cycle
        "X": Variable("$Y"),
        "Y": Variable("$RAW"),
    }
    assert reference_cycles(definitions) == [["A", "B", "C"]]


def test_reference_cycles_deep_chain_is_safe() -> None:
    definitions = {f"V{i}": Variable(f"$V{i + 1}") for i in range(5000)}
    definitions["V5000"] = Variable("$V0")
    assert [len(cycle) for cycle in reference_cycles(definitions)] == [5001]


# -- precedence -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layers", "expected"),
    [
        ({"predefined": {"K": "p"}}, "p"),
        ({"predefined": {"K": "p"}, "file": {"K": Variable("f")}}, "f"),
        ({"file": {"K": Variable("f")}, "job": {"K": Variable("j")}}, "j"),
        ({"job": {"K": Variable("j")}, "matrix": {"K": "m"}}, "m"),
        ({"matrix": {"K": "m"}, "rules": {"K": Variable("r")}}, "r"),
        ({"job": {"K": Variable("j")}, "rules": {"K": Variable("r")}}, "r"),  # GitLab docs
        ({"rules": {"K": Variable("r")}, "run": {"K": "e"}}, "e"),
        (
            {
                "predefined": {"K": "p"},
                "file": {"K": Variable("f")},
                "job": {"K": Variable("j")},
                "matrix": {"K": "m"},
                "rules": {"K": Variable("r")},
                "run": {"K": "e"},
            },
            "e",
        ),
    ],
)
def test_merge_precedence(layers: dict[str, dict[str, object]], expected: str) -> None:
    assert resolve(merge(**layers))["K"] == expected  # type: ignore[arg-type]


def test_merge_predefined_and_run_values_are_raw() -> None:
    merged = merge(
        predefined={"CI_COMMIT_MESSAGE": "costs $HOME"},
        file={"HOME": Variable("/home"), "DIR": Variable("$CI_PROJECT_DIR/x")},
        run={"ARG": "$HOME"},
        job={"CI_PROJECT_DIR": Variable("/builds/p")},
    )
    assert resolve(merged) == {
        "CI_COMMIT_MESSAGE": "costs $HOME",
        "HOME": "/home",
        "DIR": "/builds/p/x",
        "CI_PROJECT_DIR": "/builds/p",
        "ARG": "$HOME",
    }


def test_merge_file_variable_refers_to_job_override() -> None:
    # GitLab expands after merging: a global value sees the job's definition of what it names
    merged = merge(
        file={"URL": Variable("https://$HOST"), "HOST": Variable("prod")},
        job={"HOST": Variable("staging")},
    )
    assert resolve(merged)["URL"] == "https://staging"


# -- slugs and predefined variables ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("TEST", "test"),
        ("project_with_underscores", "project-with-underscores"),
        ("namespace/project", "namespace-project"),
        ("a" * 70, "a" * 63),
        ("test_trailing_", "test-trailing"),
        ("--leading", "leading"),
        ("feature/Fix-Ünicode", "feature-fix--nicode"),
        ("a" * 62 + "/b", "a" * 62),  # cut to 63 first ('.../'), then the dash removed
        ("1.2.3", "1-2-3"),
        ("", ""),
        ("///", ""),
    ],
)
def test_slugify_gitlab_rule(text: str, expected: str) -> None:
    assert slugify(text) == expected


BRANCH = {
    "commit": "0123456789abcdef0123456789abcdef01234567",
    "ref": "Feature/Login",
    "is_tag": False,
    "message": "Fix the login\n\nIt was broken.\n",
    "default_branch": "main",
    "pipeline_id": 1001,
    "pipeline_iid": 7,
    "job_id": 5002,
    "job_name": "test: [aws, app1]",
    "stage": "test",
    "project_dir": "/builds/team/app",
    "project_name": "app",
    "project_path": "Team/App",
    "node_index": None,
    "node_total": None,
    "repository_url": "https://gitlab.example.com/team/app.git",
    "source": "push",
}


def test_predefined_on_a_branch() -> None:
    assert predefined(**BRANCH) == {  # type: ignore[arg-type]
        "CI": "true",
        "GITLAB_CI": "true",
        "CI_COMMIT_SHA": "0123456789abcdef0123456789abcdef01234567",
        "CI_COMMIT_SHORT_SHA": "01234567",
        "CI_COMMIT_REF_NAME": "Feature/Login",
        "CI_COMMIT_REF_SLUG": "feature-login",
        "CI_COMMIT_BRANCH": "Feature/Login",
        "CI_COMMIT_MESSAGE": "Fix the login\n\nIt was broken.\n",
        "CI_COMMIT_TITLE": "Fix the login",
        "CI_DEFAULT_BRANCH": "main",
        "CI_PIPELINE_ID": "1001",
        "CI_PIPELINE_IID": "7",
        "CI_PIPELINE_SOURCE": "push",
        "CI_JOB_ID": "5002",
        "CI_JOB_NAME": "test: [aws, app1]",
        "CI_JOB_NAME_SLUG": "test---aws--app1",
        "CI_JOB_STAGE": "test",
        "CI_PROJECT_DIR": "/builds/team/app",
        "CI_PROJECT_NAME": "app",
        "CI_PROJECT_PATH": "Team/App",
        "CI_PROJECT_PATH_SLUG": "team-app",
        "CI_NODE_TOTAL": "1",
        "CI_REPOSITORY_URL": "https://gitlab.example.com/team/app.git",
    }


def test_predefined_on_a_tag_has_tag_and_no_branch() -> None:
    found = predefined(**{**BRANCH, "ref": "v1.2.0", "is_tag": True})  # type: ignore[arg-type]
    assert (found.get("CI_COMMIT_TAG"), "CI_COMMIT_BRANCH" in found) == ("v1.2.0", False)
    assert (found["CI_COMMIT_REF_NAME"], found["CI_COMMIT_REF_SLUG"]) == ("v1.2.0", "v1-2-0")


def test_predefined_parallel_job_has_node_index_and_total() -> None:
    found = predefined(**{**BRANCH, "node_index": 2, "node_total": 5})  # type: ignore[arg-type]
    assert (found["CI_NODE_INDEX"], found["CI_NODE_TOTAL"]) == ("2", "5")


def test_predefined_job_status_only_when_given() -> None:
    found = predefined(**BRANCH, job_status="failed")  # type: ignore[arg-type]
    assert found["CI_JOB_STATUS"] == "failed"
    assert "CI_JOB_STATUS" not in predefined(**BRANCH)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("message", "title"),
    [
        ("One line", "One line"),
        ("Title\r\nbody", "Title"),
        ("", "No commit message"),
        ("  \n", "No commit message"),
    ],
)
def test_predefined_commit_title(message: str, title: str) -> None:
    found = predefined(**{**BRANCH, "message": message})  # type: ignore[arg-type]
    assert (found["CI_COMMIT_TITLE"], found["CI_COMMIT_MESSAGE"]) == (title, message)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://gitlab.example.com/g/p.git", "https://gitlab.example.com/g/p.git"),
        ("https://user:s3cret@gitlab.example.com/g/p.git", "https://gitlab.example.com/g/p.git"),
        ("https://glpat-token@gitlab.example.com/g/p.git", "https://gitlab.example.com/g/p.git"),
        ("http://u:p@host:8080/p.git", "http://host:8080/p.git"),
        ("ssh://git:pw@host/p.git", "ssh://git@host/p.git"),
        ("ssh://git@host/p.git", "ssh://git@host/p.git"),
        ("git@gitlab.example.com:g/p.git", "git@gitlab.example.com:g/p.git"),
        ("/srv/repos/p", "/srv/repos/p"),
    ],
)
def test_predefined_repository_url_has_no_credentials(url: str, expected: str) -> None:
    found = predefined(**{**BRANCH, "repository_url": url})  # type: ignore[arg-type]
    assert found["CI_REPOSITORY_URL"] == expected


# -- fuzzing ----------------------------------------------------------------------------------

_NAMES = st.sampled_from(["A", "B", "C", "D", "AB", "_x"])
_TEXT = st.lists(
    st.one_of(
        st.sampled_from(["$", "$$", "{", "}", "${", "%", "-", "/", " "]),
        _NAMES.map(lambda n: "$" + n),
        _NAMES.map(lambda n: "${" + n + "}"),
        st.text(max_size=5),
    ),
    max_size=12,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=_TEXT, values=st.dictionaries(_NAMES, st.text(max_size=10), max_size=6))
def test_expand_never_raises_and_inserts_values_once(text: str, values: dict[str, str]) -> None:
    result = expand(text, values)
    assert isinstance(result, str)
    # with every value empty, nothing but the text itself (minus references) can remain
    assert len(expand(text, dict.fromkeys(values, ""))) <= len(text)


@settings(max_examples=300, deadline=None)
@given(
    definitions=st.dictionaries(
        _NAMES, st.builds(Variable, _TEXT, expand=st.booleans()), max_size=6
    )
)
def test_resolve_never_raises_nor_loops(definitions: dict[str, Variable]) -> None:
    started = time.monotonic()
    result = resolve(definitions)
    cycles = reference_cycles(definitions)
    assert time.monotonic() - started < 1
    assert list(result) == list(definitions)
    for name, variable in definitions.items():
        in_cycle = any(name in cycle for cycle in cycles) or name in references(variable.value)
        if not variable.expand or in_cycle:
            assert result[name] == variable.value
