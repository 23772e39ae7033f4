"""GitLab CI/CD variables: definitions, ``$VAR`` expansion, precedence, predefined variables.

    read_variables(node, filename, where, job=...) -> (definitions, problems)
    expand(text, values) -> str                     one pass: $VAR, ${VAR}, $$
    resolve(definitions) -> dict[str, str]          every value expanded, cycles left alone
    reference_cycles(definitions) -> list of cycles GitLab refuses
    merge(...) -> definitions                       GitLab's order of precedence
    predefined(...) -> dict[str, str]               CI_* variables of one job
    slugify(text) -> str                            GitLab's *_SLUG rule

Followed, from gitlab-org/gitlab and gitlab-org/gitlab-runner:

* Definitions (``lib/gitlab/ci/config/entry/variable.rb``): ``KEY: value`` or
  ``KEY: {value, description, expand, options}``; ``description`` and ``options`` only at
  top level (in a job, GitLab reports "uses invalid data keys"); ``value`` must be one of
  ``options``; ``expand: false`` makes the value raw (never expanded). GitLab takes only
  strings and integers as values (``AlphanumericValidator``); floats and booleans, which it
  refuses, are taken here as written (``1.10`` stays ``1.10``), and so are integers (``0x1F``).
* Expansion (``gitlab-runner common/variables.go``, ``lib/gitlab/ci/variables/collection.rb``):
  ``$NAME`` and ``${NAME}`` with NAME ``[A-Za-z_][A-Za-z0-9_]*``; ``$$`` is one dollar; an
  undefined variable is empty. ``%NAME%`` is left alone: GitLab's server also matches it for
  Windows runners, and cicd runs Linux containers only.
* Variables referring to variables are expanded in dependency order, as GitLab's
  ``sort_and_expand_all`` does, so the order of definition does not matter and long chains
  resolve. GitLab refuses a file with a reference cycle ("circular variable reference
  detected"); here ``resolve`` never loops: a variable in a cycle, or referring to one, keeps
  its value as written, and ``reference_cycles`` names the cycles for a validator to report.
  A self-reference (``PATH: "/x:$PATH"``) is kept as written too; GitLab lets it through
  (its sort ignores one-variable cycles) and the runner expands it once, to ``/x:/x:$PATH``.
* Precedence (``lib/gitlab/ci/variables/builder.rb``, ``seed/build.rb``): predefined <
  top-level ``variables`` < job ``variables`` < ``parallel:matrix`` values < ``rules:variables``
  < variables given for the run (``--env`` here, pipeline variables on GitLab). Rules override
  the job's own variables: GitLab merges ``rules:variables`` over the job's (the docs'
  ``rules:variables`` example overrides ``DEPLOY_VARIABLE`` "defined at the job level").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from backend.errors import Problem
from backend.pipeline.loader import Map, Node, Scalar, Seq, describe
from backend.pipeline.plan import strongly_connected

# Linux refuses a single environment string over 128 KiB (MAX_ARG_STRLEN): a value whose
# expansion passes this is kept as written rather than grown (A=$B$B, B=$C$C... doubles).
MAX_VALUE = 128 * 1024

VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_REFERENCE = re.compile(r"\$\$|\$([A-Za-z_][A-Za-z0-9_]*)|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SLUG_OUT = re.compile(r"[^a-z0-9]")
_SLUG_EDGES = re.compile(r"\A-+|-+\Z")
_GLOBAL_KEYS = ("value", "description", "expand", "options")
_JOB_KEYS = ("value", "expand")


@dataclass(frozen=True)
class Variable:
    """One variable definition; ``expand=False`` keeps ``value`` exactly as written."""

    value: str
    expand: bool = True
    description: str | None = None
    options: tuple[str, ...] = ()


# -- definitions ------------------------------------------------------------------------------


def scalar_text(node: Scalar) -> str:
    """A scalar as the environment sees it: strings as they are, numbers and bools as written."""
    if isinstance(node.value, str):
        return node.value
    return node.text  # 1.10 stays "1.10", 0x1F stays "0x1F", True stays "True"


def _is_value(node: Node) -> bool:
    return isinstance(node, Scalar) and node.value is not None


def read_variables(
    node: Node, filename: str, where: str, *, job: bool
) -> tuple[dict[str, Variable], list[Problem]]:
    """The definitions of a ``variables:`` mapping, and every problem found in it.

    ``where`` prefixes each message (``"job 'build': "`` or ``""``); ``job`` says whether the
    mapping belongs to a job, where GitLab allows only ``value`` and ``expand`` in the long form.
    """
    problems: list[Problem] = []

    def add(at: Node, message: str) -> None:
        problems.append(Problem(filename, at.line, at.col, where + message))

    if not isinstance(node, Map):
        add(node, f"'variables' must be a mapping of names to values, not {describe(node)}")
        return {}, problems
    result: dict[str, Variable] = {}
    allowed = _JOB_KEYS if job else _GLOBAL_KEYS
    for key, value in node.entries:
        name = key.value
        if not isinstance(name, str) or not VARIABLE_NAME.fullmatch(name):
            add(
                key,
                f"variable name '{key.text}' must be letters, digits and '_', "
                "not starting with a digit",
            )
            continue
        if _is_value(value):
            assert isinstance(value, Scalar)
            result[name] = Variable(scalar_text(value))
        elif isinstance(value, Map):
            variable = _long_form(value, name, allowed, add)
            if variable is not None:
                result[name] = variable
        else:
            add(
                value,
                f"variable '{name}' must be a string, a number or a mapping with 'value', "
                f"not {describe(value)}",
            )
    return result, problems


def _long_form(
    node: Map, name: str, allowed: tuple[str, ...], add: Callable[[Node, str], None]
) -> Variable | None:
    """``{value, description, expand, options}``; None after reporting a problem."""
    ok = True
    for key, _ in node.entries:
        if key.value not in allowed:
            where = "in a job" if allowed is _JOB_KEYS else "in variable definitions"
            add(
                key,
                f"variable '{name}': unknown key '{key.text}' (allowed {where}: "
                + ", ".join(f"'{k}'" for k in allowed)
                + ")",
            )
            ok = False
    text = ""  # GitLab allows the value out: it is then empty
    value = node.get("value")
    if value is not None:
        if _is_value(value):
            assert isinstance(value, Scalar)
            text = scalar_text(value)
        else:
            add(
                value,
                f"variable '{name}': 'value' must be a string or a number, not {describe(value)}",
            )
            ok = False
    expand = True
    expand_node = node.get("expand")
    if expand_node is not None:
        if isinstance(expand_node, Scalar) and isinstance(expand_node.value, bool):
            expand = expand_node.value
        else:
            add(
                expand_node,
                f"variable '{name}': 'expand' must be true or false, not {describe(expand_node)}",
            )
            ok = False
    description: str | None = None
    description_node = node.get("description")
    if description_node is not None:
        if _is_value(description_node):
            assert isinstance(description_node, Scalar)
            description = scalar_text(description_node)
        else:
            add(
                description_node,
                f"variable '{name}': 'description' must be a string, not "
                f"{describe(description_node)}",
            )
            ok = False
    options: list[str] = []
    options_node = node.get("options")
    if options_node is not None:
        if isinstance(options_node, Seq) and all(_is_value(i) for i in options_node.items):
            options = [scalar_text(i) for i in options_node.items]  # type: ignore[arg-type]
            if text not in options:
                add(
                    value or node, f"variable '{name}': value '{text}' must be one of its 'options'"
                )
                ok = False
        else:
            add(
                options_node,
                f"variable '{name}': 'options' must be a list of strings, not "
                f"{describe(options_node)}",
            )
            ok = False
    if not ok:
        return None
    return Variable(text, expand=expand, description=description, options=tuple(options))


# -- expansion --------------------------------------------------------------------------------


def expand(text: str, values: Mapping[str, str], *, keep_undefined: bool = False) -> str:
    """``text`` with ``$NAME``/``${NAME}`` replaced by ``values`` and ``$$`` by ``$``, once.

    Inserted values are not scanned again (``values`` are final, see ``resolve``). An undefined
    variable becomes empty, as on GitLab's runner; ``keep_undefined`` leaves it as written, as
    GitLab's ``expand_existing`` does for ``rules:exists`` paths (``clause/exists.rb``). There
    ``$$`` still makes one dollar, where GitLab's server has no escape at all.
    """
    if "$" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name is None:
            return "$"
        value = values.get(name)
        if value is None:
            return match.group(0) if keep_undefined else ""
        return value

    return _REFERENCE.sub(replace, text)


def references(text: str) -> list[str]:
    """The variable names ``text`` refers to, in order (``$$`` is no reference)."""
    return [m.group(1) or m.group(2) for m in _REFERENCE.finditer(text) if m.group(0) != "$$"]


def _graph(definitions: Mapping[str, Variable]) -> dict[str, list[str]]:
    """Each expandable variable -> the expandable variables its value refers to."""
    graph: dict[str, list[str]] = {}
    for name, variable in definitions.items():
        if variable.expand:
            graph[name] = [
                ref
                for ref in dict.fromkeys(references(variable.value))
                if ref in definitions and definitions[ref].expand
            ]
    return graph


def resolve(definitions: Mapping[str, Variable]) -> dict[str, str]:
    """Every variable's final value: references expanded in dependency order, never looping.

    Kahn's algorithm orders the expandable variables so each is expanded once, against values
    already final: work is bounded by the output, whatever the depth of the chains. What the
    order cannot reach (a cycle, or a variable referring to one) keeps its value as written,
    and so does a value whose expansion would pass ``MAX_VALUE`` characters.
    """
    graph = _graph(definitions)
    waiting = {name: len(refs) for name, refs in graph.items()}
    users: dict[str, list[str]] = {}
    for name, refs in graph.items():
        for ref in refs:
            users.setdefault(ref, []).append(name)
    final = {name: v.value for name, v in definitions.items()}  # raw values, then expanded
    ready = [name for name, count in waiting.items() if count == 0]
    while ready:
        name = ready.pop()
        expanded = _bounded_expand(final[name], final)
        if expanded is not None:
            final[name] = expanded
        for user in users.get(name, ()):
            waiting[user] -= 1
            if waiting[user] == 0:
                ready.append(user)
    return final


def _bounded_expand(text: str, values: Mapping[str, str]) -> str | None:
    """``expand(text, values)``, or None when the result would pass ``MAX_VALUE``."""
    size = len(text)  # each reference is replaced by its value, each "$$" by one "$"
    for match in _REFERENCE.finditer(text):
        name = match.group(1) or match.group(2)
        size += (len(values.get(name, "")) if name else 1) - len(match.group(0))
    return expand(text, values) if size <= MAX_VALUE else None


def reference_cycles(definitions: Mapping[str, Variable]) -> list[list[str]]:
    """The cycles of references among expandable variables, each in definition order.

    GitLab refuses such a file ("circular variable reference detected"); like GitLab's
    ``Collection::Sort``, a variable referring to itself alone is no cycle. Iterative
    (Tarjan), so any depth is safe.
    """
    graph = _graph(definitions)
    order = {name: i for i, name in enumerate(definitions)}
    cycles = [
        sorted(component, key=order.__getitem__)
        for component in strongly_connected(list(graph), graph)
        if len(component) > 1
    ]
    return sorted(cycles, key=lambda c: order[c[0]])


# -- precedence -------------------------------------------------------------------------------


def merge(
    *,
    predefined: Mapping[str, str] | None = None,
    file: Mapping[str, Variable] | None = None,
    job: Mapping[str, Variable] | None = None,
    matrix: Mapping[str, str] | None = None,
    rules: Mapping[str, Variable] | None = None,
    run: Mapping[str, str] | None = None,
) -> dict[str, Variable]:
    """One job's definitions, each layer overriding the ones before it (GitLab's order).

    ``predefined`` values are raw: a commit message holding ``$HOME`` is data, not a
    reference. ``run`` (``--env KEY=VALUE``) is raw too: the user's shell already expanded
    what they meant. ``matrix`` values are expandable, as GitLab's job variables are.
    """
    merged: dict[str, Variable] = {}
    merged.update({k: Variable(v, expand=False) for k, v in (predefined or {}).items()})
    merged.update(file or {})
    merged.update(job or {})
    merged.update({k: Variable(v) for k, v in (matrix or {}).items()})
    merged.update(rules or {})
    merged.update({k: Variable(v, expand=False) for k, v in (run or {}).items()})
    return merged


# -- predefined variables ---------------------------------------------------------------------


def slugify(text: str) -> str:
    """GitLab's slug (``Gitlab::Utils.slugify``): lowercased, every character outside ``a-z0-9``
    made ``-``, cut to 63 characters, then leading and trailing ``-`` removed (in that order:
    a slug can be shorter than 63 when the cut lands on dashes)."""
    return _SLUG_EDGES.sub("", _SLUG_OUT.sub("-", text.lower())[:63])


def _without_credentials(url: str) -> str:
    """``url`` with no secret in it: HTTP(S) loses its whole user part (tokens often sit in
    the user name), other schemes their password; ``git@host:path`` has none to lose."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc or not parts.scheme:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    if parts.scheme.lower() in ("http", "https"):
        netloc = host
    else:
        netloc = f"{userinfo.partition(':')[0]}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def predefined(
    *,
    commit: str,
    ref: str,
    is_tag: bool,
    message: str,
    default_branch: str,
    pipeline_id: int,
    pipeline_iid: int,
    job_id: int,
    job_name: str,
    stage: str,
    project_dir: str,
    project_name: str,
    project_path: str,
    node_index: int | None,
    node_total: int | None,
    repository_url: str,
    source: str,
    job_status: str | None = None,
) -> dict[str, str]:
    """The predefined variables of one job, as GitLab defines them.

    From GitLab's predefined variables reference and ``lib/gitlab/ci/variables/builder*.rb``:
    ``CI_COMMIT_BRANCH`` only on a branch, ``CI_COMMIT_TAG`` only on a tag;
    ``CI_COMMIT_SHORT_SHA`` is the first 8 characters; ``CI_COMMIT_TITLE`` the message's first
    line ("No commit message" for an empty one, as ``Commit#full_title``); ``CI_NODE_INDEX``
    only for a ``parallel`` job, while ``CI_NODE_TOTAL`` is always set, to 1 for a job that is
    not parallel (``ci_node_total_value``). ``CI_JOB_STATUS`` is set only when ``job_status``
    is given: the runner sets it for ``after_script`` (``success``, ``failed``, ``canceled``).
    Unlike GitLab, ``CI_REPOSITORY_URL`` carries no credentials (GitLab puts a job token in).
    ``ref`` is the branch or tag name, not ``refs/heads/...``.
    """
    title = re.split(r"[\r\n]", message, maxsplit=1)[0] if message.strip() else ""
    variables = {
        "CI": "true",
        "GITLAB_CI": "true",
        "CI_COMMIT_SHA": commit,
        "CI_COMMIT_SHORT_SHA": commit[:8],
        "CI_COMMIT_REF_NAME": ref,
        "CI_COMMIT_REF_SLUG": slugify(ref),
    }
    if is_tag:
        variables["CI_COMMIT_TAG"] = ref
    else:
        variables["CI_COMMIT_BRANCH"] = ref
    variables.update(
        {
            "CI_COMMIT_MESSAGE": message,
            "CI_COMMIT_TITLE": title or "No commit message",
            "CI_DEFAULT_BRANCH": default_branch,
            "CI_PIPELINE_ID": str(pipeline_id),
            "CI_PIPELINE_IID": str(pipeline_iid),
            "CI_PIPELINE_SOURCE": source,
            "CI_JOB_ID": str(job_id),
            "CI_JOB_NAME": job_name,
            "CI_JOB_NAME_SLUG": slugify(job_name),
            "CI_JOB_STAGE": stage,
        }
    )
    if job_status is not None:
        variables["CI_JOB_STATUS"] = job_status
    variables.update(
        {
            "CI_PROJECT_DIR": project_dir,
            "CI_PROJECT_NAME": project_name,
            "CI_PROJECT_PATH": project_path,
            "CI_PROJECT_PATH_SLUG": slugify(project_path),
        }
    )
    if node_index is not None:
        variables["CI_NODE_INDEX"] = str(node_index)
    variables["CI_NODE_TOTAL"] = str(node_total if node_total is not None else 1)
    variables["CI_REPOSITORY_URL"] = _without_credentials(repository_url)
    return variables
