"""The native format's job ``image`` (a name or ``{name, entrypoint, pull_policy}``) and
``services`` (docs/pipeline-format.md): GitLab's keywords, read the same way.

A service is an image name or ``{name, alias, entrypoint, command, variables, pull_policy}``.
``pull_policy`` is ``always``, ``if-not-present`` or ``never``, or a non-empty list of them tried
in order. ``$NAME`` and ``${NAME}`` in image and service names are expanded with the pipeline's
and the job's variables once the job is read (``expand_names``), as GitLab expands them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from backend.pipeline.gitlab.variables import expand
from backend.pipeline.loader import Map, Node, Scalar, Seq, describe
from backend.pipeline.model import Job, Service

IMAGE_KEYS = ("name", "entrypoint", "pull_policy")
SERVICE_KEYS = ("name", "alias", "entrypoint", "command", "variables", "pull_policy")
PULL_POLICIES = ("always", "if-not-present", "never")
MAX_SERVICES = 20  # containers one job may start beside itself
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

Add = Callable[[Node, str], None]


def read_image(node: Node, label: str, add: Add) -> dict[str, object]:
    """A job's ``image``: the Job fields it sets (image, image_entrypoint, pull_policy)."""
    what = f"{label}: 'image"
    if not isinstance(node, Map):
        name = _string(node, f"{what}'", add)
        return {"image": name} if name is not None else {}
    fields = _entry(node, what, IMAGE_KEYS, add)
    return {
        "image": fields.get("name"),
        "image_entrypoint": fields.get("entrypoint"),
        "pull_policy": fields.get("pull_policy", []),
    }


def expand_names(job: Job, pipeline_variables: Mapping[str, str]) -> Job:
    """``job`` with ``$VARIABLES`` in its image and services' names expanded: the pipeline's
    variables, then the job's; an undefined one becomes empty and ``$$`` one ``$`` (GitLab's)."""
    values = {**pipeline_variables, **job.variables}
    services = [s.model_copy(update={"name": expand(s.name, values)}) for s in job.services]
    return job.model_copy(update={"image": expand(job.image, values), "services": services})


def image_fields(fields: Mapping[str, object]) -> dict[str, Any]:
    """The Job fields a job draft's ``image`` (read by ``read_image``) sets; {} without one."""
    value = fields.get("image")
    return dict(value) if isinstance(value, dict) else {}


def read_services(node: Node, label: str, add: Add) -> list[Service]:
    """The services ``node`` (a job's ``services:``) describes; each problem goes to ``add``."""
    what = f"{label}: 'services"
    if not isinstance(node, Seq):
        add(node, f"{what}' must be a list, not {describe(node)}")
        return []
    if len(node.items) > MAX_SERVICES:
        add(node, f"{what}' lists {len(node.items)} services; the limit is {MAX_SERVICES}")
    services = []
    for item in node.items[:MAX_SERVICES]:
        if not isinstance(item, Map):
            name = _string(item, f"{what}' entries", add)
            if name is not None:
                services.append(Service(name=name))
            continue
        fields = _entry(item, what, SERVICE_KEYS, add)
        if fields.get("name") is not None:
            services.append(Service(**fields))  # type: ignore[arg-type]
    return services


def _entry(node: Map, what: str, allowed: tuple[str, ...], add: Add) -> dict[str, object]:
    """The checked fields of an image or service mapping (``name`` is required)."""
    fields: dict[str, object] = {}
    for key, value in node.entries:
        name = key.value
        if name not in allowed:
            add(key, f"unknown key '{key.text}' in {what}' (allowed: {', '.join(allowed)})")
        elif name in ("name", "alias"):
            fields[name] = _string(value, f"{what}:{name}'", add)
        elif name in ("entrypoint", "command"):
            fields[name] = _strings(value, f"{what}:{name}'", add, empty_ok=True)
        elif name == "variables":
            fields[name] = _variables(value, f"{what}:variables'", add)
        elif name == "pull_policy":
            fields[name] = _pull_policy(value, f"{what}:pull_policy'", add)
    if node.get("name") is None:
        add(node, f"{what}' entry is missing required key 'name'")
    return {key: value for key, value in fields.items() if value is not None}


def _string(node: Node, what: str, add: Add) -> str | None:
    if isinstance(node, Scalar) and isinstance(node.value, str) and node.value.strip():
        return node.value
    add(node, f"{what} must be a non-empty string, not {describe(node)}")
    return None


def _strings(node: Node, what: str, add: Add, *, empty_ok: bool = False) -> list[str] | None:
    """A string (one item) or a list of strings; ``[""]`` allowed where ``empty_ok``."""
    items = node.items if isinstance(node, Seq) else [node]
    found = []
    for item in items:
        if isinstance(item, Scalar) and isinstance(item.value, str) and (empty_ok or item.value):
            found.append(item.value)
        else:
            add(item, f"{what} must hold strings, not {describe(item)}")
    return found


def _variables(node: Node, what: str, add: Add) -> dict[str, str] | None:
    if not isinstance(node, Map):
        add(node, f"{what} must be a mapping of names to values, not {describe(node)}")
        return None
    result = {}
    for key, value in node.entries:
        if not isinstance(key.value, str) or not _VARIABLE_NAME.fullmatch(key.value):
            add(key, f"{what}: name '{key.text}' must be letters, digits and '_'")
        elif not isinstance(value, Scalar) or isinstance(value.value, (list, dict)):
            add(value, f"{what}: '{key.value}' must be a string or number, not {describe(value)}")
        else:
            text = value.value
            result[key.value] = (
                "" if text is None else str(text).lower() if isinstance(text, bool) else str(text)
            )
    return result


def _pull_policy(node: Node, what: str, add: Add) -> list[str] | None:
    items = node.items if isinstance(node, Seq) else [node]
    if isinstance(node, Seq) and not items:
        add(node, f"{what} must not be an empty list")
        return None
    found = []
    for item in items:
        if isinstance(item, Scalar) and item.value in PULL_POLICIES:
            found.append(str(item.value))
        else:
            add(item, f"{what} must be one of {', '.join(PULL_POLICIES)}, not {describe(item)}")
    return found
