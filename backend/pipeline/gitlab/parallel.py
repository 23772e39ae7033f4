"""Jobs fanned out by GitLab's ``parallel:``, and the ``needs``/``dependencies`` that name them.

    fan_out(job, node, filename) -> (instances, problems)
    expand_need(name, parallel, fanned, filename, where) -> (names, problems)
    expand_dependencies(names, fanned) -> names

Followed, from gitlab-org/gitlab ``lib/gitlab/ci/config/``:

* ``parallel: N`` (``entry/product/parallel.rb``): an integer from 1 to 200 (GitLab 16.0
  lowered the minimum from 2, "Allow just one parallel job"); jobs ``job 1/N`` ... ``job N/N``
  (``normalizer/number_strategy.rb``).
* ``parallel: matrix:`` (``entry/product/matrix.rb``, ``variables.rb``,
  ``normalizer/matrix_strategy.rb``): a list of mappings of variable -> value or list of
  values (strings or numbers); each mapping gives the cartesian product of its lists, the
  first variable varying slowest; all mappings together make at most 200 jobs. A job is
  named ``job: [v1, v2]``, its values joined by ``", "`` in the order of the mapping's keys,
  with nothing quoted or escaped (``job: [a b, c]``). Its ``CI_NODE_INDEX`` counts from 1
  over the whole matrix, ``CI_NODE_TOTAL`` is the number of jobs.
* Job names are at most 255 characters; GitLab fails silently on a longer matrix name
  (gitlab-org/gitlab#584573): here it is a positioned problem.
* Two matrix jobs with the same name (``- A: x`` and ``- B: x``): GitLab keeps one, the
  later's settings in the earlier's place (a Ruby hash keyed by name); so does ``fan_out``.
* ``needs: [x]`` and ``dependencies: [x]`` on a parallel job ``x`` name all its jobs
  (``normalizer.rb``). ``needs: [{job: x, parallel: {matrix: [...]}}]`` names the jobs that
  matrix would make for ``x``; the variables must come in the order ``x`` lists them (the
  docs say so: names are compared, not values). Beyond GitLab, a name that ``x`` does not
  make is reported where it is written.

Not done: ``$[[ matrix.VAR ]]`` in ``needs`` (GitLab 18), value aliases.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from backend.errors import Problem
from backend.pipeline.loader import Map, Node, Scalar, Seq, describe

MAX_JOBS = 200  # GitLab's PARALLEL_LIMIT, for parallel: N and for a whole matrix
MAX_NAME = 255  # characters in a job name, GitLab's limit


@dataclass(frozen=True)
class Instance:
    """One job made by ``parallel``: its name, ``CI_NODE_INDEX``/``CI_NODE_TOTAL`` and the
    matrix variables it sets (empty for ``parallel: N``)."""

    name: str
    index: int
    total: int
    variables: dict[str, str] = field(default_factory=dict)


class _Problems:
    """Collects positioned problems, each message prefixed with where it is."""

    def __init__(self, filename: str, where: str) -> None:
        self.filename = filename
        self.where = where
        self.items: list[Problem] = []

    def add(self, node: Node, message: str) -> None:
        self.items.append(Problem(self.filename, node.line, node.col, self.where + message))


def fan_out(job: str, node: Node, filename: str) -> tuple[list[Instance], list[Problem]]:
    """The jobs ``parallel`` (the value ``node``) makes of job ``job``, or the problems found.

    No instance is returned when there is any problem: half a matrix would be misleading.
    """
    problems = _Problems(filename, f"job '{job}': ")
    if (
        isinstance(node, Scalar)
        and isinstance(node.value, int)
        and not isinstance(node.value, bool)
    ):
        total = node.value
        if not 1 <= total <= MAX_JOBS:
            problems.add(node, f"'parallel' must be from 1 to {MAX_JOBS}, not {total}")
            return [], problems.items
        return [Instance(f"{job} {i}/{total}", i, total) for i in range(1, total + 1)], []
    if not isinstance(node, Map):
        problems.add(
            node,
            "'parallel' must be an integer from 1 to "
            f"{MAX_JOBS} or a mapping with 'matrix', not {describe(node)}",
        )
        return [], problems.items
    matrix = _matrix_node(node, problems, "'parallel'")
    if matrix is None:
        return [], problems.items
    combinations = _combinations(matrix, problems)
    if problems.items:
        return [], problems.items
    total = len(combinations)
    by_name: dict[str, Instance] = {}
    for index, (entry, variables) in enumerate(combinations, start=1):
        name = matrix_name(job, variables.values())
        if len(name) > MAX_NAME:
            problems.add(
                entry,
                f"'parallel: matrix' makes job name '{name[:40]}...' of {len(name)} "
                f"characters; the limit is {MAX_NAME}",
            )
            continue
        by_name[name] = Instance(name, index, total, variables)  # a later twin wins
    if problems.items:
        return [], _first_per_node(problems.items)
    return list(by_name.values()), []


def matrix_name(job: str, values: Iterable[str]) -> str:
    """GitLab's name of a matrix job: ``job: [a, b]``."""
    return f"{job}: [{', '.join(values)}]"


def _first_per_node(problems: list[Problem]) -> list[Problem]:
    """One problem per position: an entry making 100 long names is said once."""
    seen: dict[tuple[int, int], Problem] = {}
    for problem in problems:
        seen.setdefault((problem.line, problem.column), problem)
    return list(seen.values())


def _matrix_node(node: Map, problems: _Problems, what: str) -> Seq | None:
    """The ``matrix`` list of a ``parallel`` mapping; None after reporting a problem."""
    for key, _ in node.entries:
        if key.value != "matrix":
            problems.add(key, f"unknown key '{key.text}' in {what} (only 'matrix')")
    matrix = node.get("matrix")
    if matrix is None:
        problems.add(node, f"{what} is missing required key 'matrix'")
        return None
    if not isinstance(matrix, Seq) or not matrix.items:
        shown = "an empty list" if isinstance(matrix, Seq) else describe(matrix)
        problems.add(
            matrix, f"'parallel: matrix' must be a non-empty list of mappings, not {shown}"
        )
        return None
    if problems.items:
        return None
    return matrix


def _value_text(node: Node) -> str | None:
    """A matrix value as its variable holds it; None when it is not a string or a number.

    GitLab accepts strings and integers (``AlphanumericValidator``) and stringifies them with
    Ruby's ``to_s``; a float, which GitLab refuses, is taken as written; a boolean is refused.
    """
    if not isinstance(node, Scalar) or isinstance(node.value, bool) or node.value is None:
        return None
    if isinstance(node.value, str):
        return node.value
    if isinstance(node.value, int):
        return str(node.value)  # 0x10 is 16, as Ruby's to_s says
    return node.text


def _combinations(matrix: Seq, problems: _Problems) -> list[tuple[Map, dict[str, str]]]:
    """Every variables mapping the matrix makes, with the entry that makes it, in order.

    The jobs are counted before any is built: 20 lists of 20 values must be refused, not made.
    """
    entries: list[tuple[Map, list[str], list[list[str]]]] = []
    for entry in matrix.items:
        if not isinstance(entry, Map) or not entry.entries:
            shown = "an empty mapping" if isinstance(entry, Map) else describe(entry)
            problems.add(
                entry, f"'parallel: matrix' entries must map variables to values, not {shown}"
            )
            continue
        names: list[str] = []
        columns: list[list[str]] = []
        for key, value in entry.entries:
            if not isinstance(key.value, str):
                problems.add(key, f"matrix variable name '{key.text}' must be a string")
                continue
            values = _values(key.value, value, problems)
            if values is not None:
                names.append(key.value)
                columns.append(values)
        entries.append((entry, names, columns))
    if problems.items:
        return []
    count = sum(math.prod(len(column) for column in columns) for _, _, columns in entries)
    if count > MAX_JOBS:
        problems.add(matrix, f"'parallel: matrix' makes {count} jobs; the limit is {MAX_JOBS}")
        return []
    return [
        (entry, dict(zip(names, row, strict=True)))
        for entry, names, columns in entries
        for row in itertools.product(*columns)
    ]


def _values(name: str, node: Node, problems: _Problems) -> list[str] | None:
    """The values of one matrix variable: a scalar or a non-empty list of scalars."""
    if isinstance(node, Seq):
        if not node.items:
            problems.add(node, f"matrix variable '{name}' must list at least one value")
            return None
        values = []
        for item in node.items:
            text = _value_text(item)
            if text is None:
                problems.add(
                    item,
                    f"matrix variable '{name}' values must be strings or numbers, "
                    f"not {describe(item)}",
                )
                return None
            values.append(text)
        return values
    text = _value_text(node)
    if text is None:
        problems.add(
            node,
            f"matrix variable '{name}' must be a string, a number or a list of them, "
            f"not {describe(node)}",
        )
        return None
    return [text]


def expand_need(
    name: str,
    parallel: Node | None,
    fanned: Mapping[str, Sequence[Instance]],
    filename: str,
    where: str,
) -> tuple[list[str], list[Problem]]:
    """The job names one ``needs`` entry stands for.

    ``name`` is the needed job as written, ``parallel`` the entry's ``parallel:`` value if
    any, ``fanned`` maps each parallel job to its instances; ``where`` prefixes messages
    (``"job 'test': "``). A job that is not parallel stands for itself: whether it exists
    is for the caller to check.
    """
    problems = _Problems(filename, where)
    instances = fanned.get(name)
    if parallel is None:
        return ([i.name for i in instances] if instances else [name]), []
    if not isinstance(parallel, Map):
        problems.add(
            parallel,
            f"'parallel' in needs must be a mapping with 'matrix', not {describe(parallel)}",
        )
        return [], problems.items
    matrix = _matrix_node(parallel, problems, "'parallel' in needs")
    if matrix is None:
        return [], problems.items
    if not instances or not instances[0].variables:
        problems.add(parallel, f"needs '{name}' with 'parallel: matrix', but '{name}' has none")
        return [], problems.items
    combinations = _combinations(matrix, problems)
    if problems.items:
        return [], problems.items
    made = {i.name for i in instances}
    names: list[str] = []
    for entry, variables in combinations:
        wanted = matrix_name(name, variables.values())
        if wanted not in made:
            problems.add(
                entry,
                f"needs '{wanted}', which the matrix of '{name}' does not make "
                "(values must be ones it lists, variables in its order)",
            )
        elif wanted not in names:
            names.append(wanted)
    if problems.items:
        return [], _first_per_node(problems.items)
    return names, []


def expand_dependencies(
    names: Iterable[str], fanned: Mapping[str, Sequence[Instance]]
) -> list[str]:
    """``dependencies`` with each parallel job replaced by all its jobs, in order."""
    result: list[str] = []
    for name in names:
        instances = fanned.get(name)
        if instances:
            result.extend(i.name for i in instances)
        else:
            result.append(name)
    return result
