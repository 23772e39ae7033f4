"""From a ``.gitlab-ci.yml`` (and its local includes) to a positioned tree of concrete jobs.

The order is GitLab's (``Gitlab::Ci::Config#expand_config``): ``include`` first
(``include.py``), then ``extends`` (``extends.py``), then ``!reference`` tags (``reference.py``);
only then are jobs told from global keys and given their defaults (``Entry::Root``,
``Entry::Default``, ``Entry::Inherit``), as here.

* Global keys are ``Entry::Root::ALLOWED_KEYS``; ``types`` is the deprecated ``stages``. Every
  other top-level key is a job unless it starts with ``.`` (a hidden job: a template for
  ``extends`` and ``!reference``, never run). ``pages`` is an ordinary job.
* ``default:`` sets ``DEFAULT_KEYS`` for jobs that do not set them; the deprecated top-level
  ``image``, ``services``, ``cache``, ``before_script`` and ``after_script`` do the same, and
  setting one both there and in ``default:`` is refused, as GitLab does.
* ``inherit: default: false | [keys]`` and ``inherit: variables: false | [names]`` choose what
  a job takes from ``default:`` and from the top-level ``variables:``; a job's own variables
  win over the top-level ones of the same name.
* Lists of lists (an anchor or ``!reference`` of a list inside a list) are flattened in
  ``script``, ``before_script``, ``after_script`` and ``stages``, which may nest 10 levels
  (``Entry::Commands``, ``Entry::Stages``: MAX_NESTING_LEVEL), and in ``rules`` (``Entry::Rules``
  flattens its value), so ``!reference`` can splice scripts, stages and rules in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from backend.errors import Problem
from backend.pipeline.gitlab.extends import apply_extends
from backend.pipeline.gitlab.include import Source, load_config
from backend.pipeline.gitlab.reference import resolve_references
from backend.pipeline.gitlab.tree import new_map, new_seq, problem_at
from backend.pipeline.loader import Map, Node, Scalar, Seq, describe
from backend.pipeline.validate import suggest

GLOBAL_KEYS = (
    "default",
    "include",
    "before_script",
    "image",
    "services",
    "after_script",
    "variables",
    "stages",
    "types",
    "cache",
    "workflow",
)
DEPRECATED_GLOBALS = ("image", "services", "cache", "before_script", "after_script")
DEFAULT_KEYS = (
    "after_script",
    "artifacts",
    "before_script",
    "cache",
    "hooks",
    "id_tokens",
    "image",
    "interruptible",
    "retry",
    "services",
    "tags",
    "timeout",
)
SCRIPT_KEYS = ("before_script", "script", "after_script")
MAX_LIST_NESTING = 10  # Entry::Commands and Entry::Stages MAX_NESTING_LEVEL
JOB_MARKERS = ("script", "run", "trigger")  # what makes a mapping a job (Entry::Jobs)


@dataclass
class GitlabStructure:
    """A resolved GitLab configuration: concrete jobs in file order, the globals, problems."""

    jobs: dict[str, Map] = field(default_factory=dict)
    stages: Node | None = None
    variables: Node | None = None
    workflow: Node | None = None
    problems: list[Problem] = field(default_factory=list)
    # Per job, the pipeline variables it takes (inherit:variables): None for all, else names.
    takes_variables: dict[str, set[str] | None] = field(default_factory=dict)


def flatten(node: Node) -> tuple[Node, Node | None]:
    """``node`` with the lists inside the list spliced in, and the first list found nested
    more than ``MAX_LIST_NESTING`` levels (the outer list is level 1), if any."""
    if not isinstance(node, Seq) or not any(isinstance(i, Seq) for i in node.items):
        return node, None
    items: list[Node] = []
    too_deep: Node | None = None
    stack: list[tuple[Node, int]] = [(i, 2) for i in reversed(node.items)]
    while stack:
        item, level = stack.pop()
        if not isinstance(item, Seq):
            items.append(item)
            continue
        if level > MAX_LIST_NESTING and too_deep is None:
            too_deep = item
        stack.extend((i, level + 1) for i in reversed(item.items))
    return new_seq(node, items), too_deep


def _inherit(
    job: str, node: Node | None, allowed: tuple[str, ...] | None, problems: list[Problem]
) -> set[str] | None:
    """What an ``inherit:`` entry lets a job take: None for everything, else the names."""
    if node is None:
        return None
    if isinstance(node, Scalar) and isinstance(node.value, bool):
        return None if node.value else set()
    if isinstance(node, Seq):
        names: set[str] = set()
        for item in node.items:
            if not (isinstance(item, Scalar) and isinstance(item.value, str)):
                problems.append(
                    problem_at(item, f"job '{job}': inherit takes names, not {describe(item)}")
                )
                continue
            if allowed is not None and item.value not in allowed:
                hint = suggest(item.value, allowed)
                message = f"job '{job}': '{item.value}' cannot be inherited from default{hint}"
                problems.append(problem_at(item, message))
                continue
            names.add(item.value)
        return names
    message = f"job '{job}': inherit takes true, false or a list of names, not {describe(node)}"
    problems.append(problem_at(node, message))
    return None


class _Builder:
    def __init__(self, top: Map, problems: list[Problem]) -> None:
        self.top = top
        self.problems = problems
        self.defaults = self.default_entries()
        variables = top.get("variables")
        self.variables = variables if isinstance(variables, Map) else None
        self.takes_variables: dict[str, set[str] | None] = {}

    def default_entries(self) -> list[tuple[Scalar, Node]]:
        """The keys jobs take by default: ``default:`` and the deprecated globals."""
        entries: list[tuple[Scalar, Node]] = []
        default = self.top.get("default")
        if isinstance(default, Map):
            for key, value in default.entries:
                if key.value in DEFAULT_KEYS:
                    entries.append((key, value))
                else:
                    hint = suggest(str(key.value), DEFAULT_KEYS)
                    message = f"unknown key '{key.text}' in default{hint}"
                    self.problems.append(problem_at(key, message))
        elif default is not None and not (isinstance(default, Scalar) and default.value is None):
            message = f"default must be a mapping, not {describe(default)}"
            self.problems.append(problem_at(default, message))
        in_default = {k.value for k, _ in entries}
        for name in DEPRECATED_GLOBALS:
            found = self.top.key_node(name)
            if found is None:
                continue
            if name in in_default:
                message = f"'{name}' is set both at the top level and in default"
                self.problems.append(problem_at(found, message))
                continue
            entries.append((found, self.top.get(name)))  # type: ignore[arg-type]
        return entries

    def job(self, name: str, key: Scalar, value: Node) -> Map | None:
        """The concrete job ``name``, or None after a problem."""
        if not isinstance(value, Map):
            message = f"job '{name}' must be a mapping, not {describe(value)}"
            self.problems.append(problem_at(value, message))
            return None
        if not any(value.get(marker) is not None for marker in JOB_MARKERS):
            message = f"job '{name}' has no script, run or trigger"
            self.problems.append(problem_at(key, message))
            return None
        inherit = value.get("inherit")
        take_default: set[str] | None = None
        take_variables: set[str] | None = None
        if isinstance(inherit, Map):
            take_default = _inherit(name, inherit.get("default"), DEFAULT_KEYS, self.problems)
            take_variables = _inherit(name, inherit.get("variables"), None, self.problems)
        elif inherit is not None:
            message = f"job '{name}': inherit must be a mapping, not {describe(inherit)}"
            self.problems.append(problem_at(inherit, message))
        entries = [(k, v) for k, v in value.entries if k.value != "inherit"]
        own = {k.value for k, _ in entries}
        for dkey, dvalue in self.defaults:
            if dkey.value not in own and (take_default is None or dkey.value in take_default):
                entries.append((dkey, dvalue))
        entries = [(k, self.shaped(name, k, v)) for k, v in entries]
        job = new_map(value, entries)
        self.takes_variables[name] = take_variables
        return self.with_variables(job, take_variables)

    def shaped(self, job: str, key: Scalar, value: Node) -> Node:
        """``value`` of job key ``key`` with its lists of lists flattened where GitLab does."""
        if key.value not in (*SCRIPT_KEYS, "rules"):
            return value
        flat, too_deep = flatten(value)
        if too_deep is not None and key.value in SCRIPT_KEYS:
            message = f"job '{job}': {key.value} nests lists more than {MAX_LIST_NESTING} levels"
            self.problems.append(problem_at(too_deep, message))
        return flat

    def with_variables(self, job: Map, take: set[str] | None) -> Map:
        """``job`` with the top-level variables it inherits under its own."""
        if self.variables is None or (take is not None and not take):
            return job
        own = job.get("variables")
        if own is not None and not isinstance(own, Map):
            return job  # not variables at all: validation reports it
        own_names = {k.value for k, _ in own.entries} if own is not None else set()
        inherited = [
            (k, v)
            for k, v in self.variables.entries
            if k.value not in own_names and (take is None or k.value in take)
        ]
        if not inherited:
            return job
        merged = new_map(own or self.variables, inherited + (own.entries if own else []))
        key = job.key_node("variables") or self.top.key_node("variables")
        assert key is not None
        if own is None:
            return new_map(job, [*job.entries, (key, merged)])
        return new_map(job, [(k, merged if k.value == "variables" else v) for k, v in job.entries])


def resolve_structure(path: str, source: Source) -> GitlabStructure:
    """The jobs and globals of the GitLab CI file ``path`` of ``source``, all resolved.

    Every problem found is in ``problems``; the jobs and globals are what could be resolved
    despite them (a job with a problem is left out).
    """
    top, problems = load_config(path, source)
    if top is None:
        if not problems:
            problems = [Problem(path, 1, 1, "the file is empty: it defines no job")]
        return GitlabStructure(problems=problems)
    top, found = apply_extends(top)
    problems += found
    top, found = resolve_references(top)
    problems += found
    builder = _Builder(top, problems)
    result = GitlabStructure(variables=top.get("variables"), problems=problems)
    stages = top.get("stages") if top.get("stages") is not None else top.get("types")
    if stages is not None:
        stages, too_deep = flatten(stages)
        if too_deep is not None:
            message = f"stages nest lists more than {MAX_LIST_NESTING} levels"
            problems.append(problem_at(too_deep, message))
    result.stages = stages
    workflow = top.get("workflow")
    if isinstance(workflow, Map) and workflow.get("rules") is not None:
        rules, _ = flatten(workflow.get("rules"))  # type: ignore[arg-type]
        workflow = new_map(
            workflow, [(k, rules if k.value == "rules" else v) for k, v in workflow.entries]
        )
    result.workflow = workflow
    for key, value in top.entries:
        name = key.value if isinstance(key.value, str) else key.text
        if name in GLOBAL_KEYS or name.startswith("."):
            continue
        job = builder.job(name, key, value)
        if job is not None:
            result.jobs[name] = job
    result.takes_variables = builder.takes_variables
    if not result.jobs and not problems:
        problems.append(problem_at(top, "no visible job: every job is hidden or there is none"))
    result.problems = sorted(problems)
    return result
