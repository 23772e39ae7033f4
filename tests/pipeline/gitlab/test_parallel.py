"""GitLab ``parallel:`` fan-out: job names, node variables, limits, needs and dependencies.

Rows marked "docs" are the examples of GitLab's CI/CD YAML reference (``parallel``,
``parallel:matrix``, ``needs:parallel:matrix``) with the names the docs list.
"""

from __future__ import annotations

import textwrap

import pytest

from backend.pipeline.gitlab.parallel import (
    Instance,
    expand_dependencies,
    expand_need,
    fan_out,
)
from backend.pipeline.loader import Map, Node, parse_yaml

FILE = ".gitlab-ci.yml"


def root(text: str) -> Map:
    """The top mapping of a YAML text (dedented; line 1 is the first line written)."""
    node, problems = parse_yaml(textwrap.dedent(text).lstrip("\n"), FILE)
    assert not problems and isinstance(node, Map)
    return node


def value(text: str, key: str = "parallel") -> Node:
    node = root(text).get(key)
    assert node is not None
    return node


def names(text: str, job: str = "job") -> list[str]:
    instances, problems = fan_out(job, value(text), FILE)
    assert problems == []
    return [i.name for i in instances]


def problems(text: str, job: str = "job") -> list[str]:
    instances, found = fan_out(job, value(text), FILE)
    assert instances == []
    return [str(p) for p in found]


# -- parallel: N ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("parallel: 1", ["job 1/1"]),
        ("parallel: 3", ["job 1/3", "job 2/3", "job 3/3"]),  # docs: job_name 1/N ... N/N
    ],
)
def test_fan_out_number_names_jobs_index_of_total(text: str, expected: list[str]) -> None:
    assert names(text) == expected


def test_fan_out_number_sets_index_and_total() -> None:
    instances, _ = fan_out("rspec", value("parallel: 2"), FILE)
    assert instances == [Instance("rspec 1/2", 1, 2), Instance("rspec 2/2", 2, 2)]


def test_fan_out_number_200_is_the_limit() -> None:
    found = names("parallel: 200")
    assert (len(found), found[-1]) == (200, "job 200/200")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("parallel: 0", "1:11: job 'job': 'parallel' must be from 1 to 200, not 0"),
        ("parallel: 201", "1:11: job 'job': 'parallel' must be from 1 to 200, not 201"),
        ("parallel: -2", "1:11: job 'job': 'parallel' must be from 1 to 200, not -2"),
        (
            "parallel: '3'",
            "1:11: job 'job': 'parallel' must be an integer from 1 to 200 or a mapping with "
            "'matrix', not '3'",
        ),
        (
            "parallel: 2.0",
            "1:11: job 'job': 'parallel' must be an integer from 1 to 200 or a mapping with "
            "'matrix', not 2.0",
        ),
        (
            "parallel: true",
            "1:11: job 'job': 'parallel' must be an integer from 1 to 200 or a mapping with "
            "'matrix', not true",
        ),
        (
            "parallel: [2]",
            "1:11: job 'job': 'parallel' must be an integer from 1 to 200 or a mapping with "
            "'matrix', not a list",
        ),
    ],
)
def test_fan_out_number_out_of_bounds_or_wrong_type(text: str, message: str) -> None:
    assert problems(text) == [f"{FILE}:{message}"]


# -- parallel: matrix -------------------------------------------------------------------------


DOCS_MATRIX = """
parallel:
  matrix:
    - PROVIDER: aws
      STACK:
        - monitoring
        - app1
        - app2
    - PROVIDER: [gcp, vultr]
      STACK: [data, processing]
"""


def test_fan_out_matrix_docs_example_names() -> None:  # docs: parallel:matrix
    assert names(DOCS_MATRIX, "deploystacks") == [
        "deploystacks: [aws, monitoring]",
        "deploystacks: [aws, app1]",
        "deploystacks: [aws, app2]",
        "deploystacks: [gcp, data]",
        "deploystacks: [gcp, processing]",
        "deploystacks: [vultr, data]",
        "deploystacks: [vultr, processing]",
    ]


def test_fan_out_matrix_sets_variables_index_and_total() -> None:
    instances, _ = fan_out("deploystacks", value(DOCS_MATRIX), FILE)
    assert instances[3] == Instance(
        "deploystacks: [gcp, data]", 4, 7, {"PROVIDER": "gcp", "STACK": "data"}
    )


@pytest.mark.parametrize(
    ("matrix", "expected"),
    [
        ("- RUBY: ['3.1', '3.2']", ["job: [3.1]", "job: [3.2]"]),  # one variable
        ("- OS: linux", ["job: [linux]"]),  # one variable, one value
        ("- NAME: 'a b'\n  X: 'c, d'", ["job: [a b, c, d]"]),  # nothing quoted or escaped
        ("- B: x\n  A: y", ["job: [x, y]"]),  # the order of the keys, not sorted
        ("- V: [10, 0x10, 3.10]", ["job: [10]", "job: [16]", "job: [3.10]"]),
        ("- V: ''", ["job: []"]),
        (
            "- A: [a1, a2]\n  B: [b1, b2]",
            ["job: [a1, b1]", "job: [a1, b2]", "job: [a2, b1]", "job: [a2, b2]"],
        ),  # first variable varies slowest
    ],
)
def test_fan_out_matrix_names(matrix: str, expected: list[str]) -> None:
    text = "parallel:\n  matrix:\n" + textwrap.indent(matrix, "    ")
    assert names(text) == expected


def test_fan_out_matrix_twin_names_keep_the_later_in_the_earlier_place() -> None:
    instances, _ = fan_out("job", value("parallel:\n  matrix:\n    - A: x\n    - B: x\n"), FILE)
    assert instances == [Instance("job: [x]", 2, 2, {"B": "x"})]


def test_fan_out_matrix_of_200_jobs_is_the_limit() -> None:
    text = "parallel:\n  matrix:\n    - A: [" + ", ".join(map(str, range(200))) + "]\n"
    assert len(names(text)) == 200


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "parallel:\n  matrix:\n    - A: [1, 2, 3, 4, 5, 6]\n      B: [1, 2, 3, 4, 5, 6]\n"
            "      C: [1, 2, 3, 4, 5, 6]\n",
            ["3:5: job 'job': 'parallel: matrix' makes 216 jobs; the limit is 200"],
        ),
        (
            "parallel:\n  matrix:\n    - A: [" + ", ".join(map(str, range(150))) + "]\n"
            "    - B: [" + ", ".join(map(str, range(51))) + "]\n",
            ["3:5: job 'job': 'parallel: matrix' makes 201 jobs; the limit is 200"],
        ),
        (
            "parallel:\n  matrix: []\n",
            [
                "2:11: job 'job': 'parallel: matrix' must be a non-empty list of mappings, "
                "not an empty list"
            ],
        ),
        (
            "parallel:\n  matrix: {A: x}\n",
            [
                "2:11: job 'job': 'parallel: matrix' must be a non-empty list of mappings, "
                "not a mapping"
            ],
        ),
        (
            "parallel:\n  matrix:\n    - [A, x]\n    - {}\n",
            [
                "3:7: job 'job': 'parallel: matrix' entries must map variables to values, "
                "not a list",
                "4:7: job 'job': 'parallel: matrix' entries must map variables to values, "
                "not an empty mapping",
            ],
        ),
        (
            "parallel:\n  matrix:\n    - A: []\n      B: null\n      C: [x, true]\n"
            "      D: {x: y}\n      1: x\n",
            [
                "3:10: job 'job': matrix variable 'A' must list at least one value",
                "4:10: job 'job': matrix variable 'B' must be a string, a number or a list "
                "of them, not null",
                "5:14: job 'job': matrix variable 'C' values must be strings or numbers, not true",
                "6:10: job 'job': matrix variable 'D' must be a string, a number or a list "
                "of them, not a mapping",
                "7:7: job 'job': matrix variable name '1' must be a string",
            ],
        ),
        (
            "parallel:\n  number: 3\n",
            [
                "2:3: job 'job': unknown key 'number' in 'parallel' (only 'matrix')",
                "2:3: job 'job': 'parallel' is missing required key 'matrix'",
            ],
        ),
        (
            "parallel:\n  matrix:\n    - A: x\n  extra: 1\n",
            ["4:3: job 'job': unknown key 'extra' in 'parallel' (only 'matrix')"],
        ),
    ],
)
def test_fan_out_matrix_problems(text: str, expected: list[str]) -> None:
    assert problems(text) == [f"{FILE}:{message}" for message in expected]


def test_fan_out_matrix_name_over_255_characters_is_refused_once_per_entry() -> None:
    long = "v" * 250
    text = f"parallel:\n  matrix:\n    - A: [{long}, x]\n      B: [y, z]\n    - A: short\n"
    assert problems(text) == [
        f"{FILE}:3:7: job 'job': 'parallel: matrix' makes job name 'job: [{'v' * 34}...' "
        "of 260 characters; the limit is 255"
    ]


def test_fan_out_matrix_name_of_255_characters_is_accepted() -> None:
    long = "v" * (255 - len("job: []"))
    assert names(f"parallel:\n  matrix:\n    - A: {long}\n") == [f"job: [{long}]"]


# -- needs and dependencies -------------------------------------------------------------------


def fanned() -> dict[str, list[Instance]]:
    """The docs' needs:parallel:matrix example: linux:build, plus a parallel: 2 job."""
    build, _ = fan_out(
        "linux:build",
        value("parallel:\n  matrix:\n    - PROVIDER: aws\n      STACK: [monitoring, app1, app2]\n"),
        FILE,
    )
    shards, _ = fan_out("shards", value("parallel: 2"), FILE)
    return {"linux:build": build, "shards": shards}


def need(name: str, text: str | None) -> tuple[list[str], list[str]]:
    parallel = value(text) if text is not None else None
    found, messages = expand_need(name, parallel, fanned(), FILE, "job 'linux:rspec': ")
    return found, [str(p) for p in messages]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "linux:build",
            [
                "linux:build: [aws, monitoring]",
                "linux:build: [aws, app1]",
                "linux:build: [aws, app2]",
            ],
        ),
        ("shards", ["shards 1/2", "shards 2/2"]),
        ("lint", ["lint"]),  # not parallel: itself (whether it exists is checked elsewhere)
    ],
)
def test_expand_need_plain_name_stands_for_every_instance(name: str, expected: list[str]) -> None:
    assert need(name, None) == (expected, [])


@pytest.mark.parametrize(
    ("matrix", "expected"),
    [
        ("- PROVIDER: aws\n  STACK: app1", ["linux:build: [aws, app1]"]),  # docs
        (
            "- PROVIDER: aws\n  STACK: [app2, app1, app2]",
            ["linux:build: [aws, app2]", "linux:build: [aws, app1]"],
        ),
        (
            "- PROVIDER: aws\n  STACK: app1\n- PROVIDER: [aws]\n  STACK: [monitoring]",
            ["linux:build: [aws, app1]", "linux:build: [aws, monitoring]"],
        ),
    ],
)
def test_expand_need_matrix_selects_instances(matrix: str, expected: list[str]) -> None:
    text = "parallel:\n  matrix:\n" + textwrap.indent(matrix, "    ")
    assert need("linux:build", text) == (expected, [])


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "linux:build",
            "parallel:\n  matrix:\n    - STACK: app1\n      PROVIDER: aws\n",
            "3:7: job 'linux:rspec': needs 'linux:build: [app1, aws]', which the matrix of "
            "'linux:build' does not make (values must be ones it lists, variables in its order)",
        ),
        (
            "linux:build",
            "parallel:\n  matrix:\n    - PROVIDER: gcp\n      STACK: app1\n",
            "3:7: job 'linux:rspec': needs 'linux:build: [gcp, app1]', which the matrix of "
            "'linux:build' does not make (values must be ones it lists, variables in its order)",
        ),
        (
            "linux:build",
            "parallel:\n  matrix:\n    - PROVIDER: aws\n",
            "3:7: job 'linux:rspec': needs 'linux:build: [aws]', which the matrix of "
            "'linux:build' does not make (values must be ones it lists, variables in its order)",
        ),
        (
            "linux:build",
            "parallel: 2",
            "1:11: job 'linux:rspec': 'parallel' in needs must be a mapping with 'matrix', not 2",
        ),
        (
            "shards",
            "parallel:\n  matrix:\n    - A: x\n",
            "2:3: job 'linux:rspec': needs 'shards' with 'parallel: matrix', but 'shards' has none",
        ),
        (
            "lint",
            "parallel:\n  matrix:\n    - A: x\n",
            "2:3: job 'linux:rspec': needs 'lint' with 'parallel: matrix', but 'lint' has none",
        ),
    ],
)
def test_expand_need_matrix_problems(name: str, text: str, expected: str) -> None:
    assert need(name, text) == ([], [f"{FILE}:{expected}"])


def test_expand_dependencies_replaces_parallel_jobs_by_their_instances() -> None:
    assert expand_dependencies(["shards", "lint", "linux:build"], fanned()) == [
        "shards 1/2",
        "shards 2/2",
        "lint",
        "linux:build: [aws, monitoring]",
        "linux:build: [aws, app1]",
        "linux:build: [aws, app2]",
    ]
