"""Small operations on positioned YAML trees shared by the GitLab structure layer.

Parsed nodes are never changed in place: YAML aliases share nodes between places (and between
jobs), so every operation here builds new ``Map``/``Seq`` nodes and reuses untouched subtrees.
"""

from __future__ import annotations

from backend.errors import Problem
from backend.pipeline.loader import Map, Node, Scalar, Seq

# GitLab refuses a YAML file nested deeper than 100 levels (``Gitlab::Config::Loader::Yaml``,
# MAX_YAML_DEPTH). The same bound keeps our recursive walks far from Python's recursion limit.
MAX_DEPTH = 100


def problem_at(node: Node, message: str, default_file: str = "<unknown>") -> Problem:
    """A problem positioned at ``node`` in the file it was read from."""
    return Problem(node.file or default_file, node.line, node.col, message)


def new_map(like: Node, entries: list[tuple[Scalar, Node]]) -> Map:
    """A new mapping at ``like``'s position holding ``entries``."""
    result = Map(like.line, like.col, file=like.file, override=like.override)
    result.entries = entries
    result.reindex()
    return result


def new_seq(like: Node, items: list[Node]) -> Seq:
    """A new sequence at ``like``'s position holding ``items``."""
    return Seq(like.line, like.col, items=items, file=like.file, override=like.override)


def without(mapping: Map, *keys: str) -> Map:
    """A copy of ``mapping`` without the string keys ``keys``."""
    return new_map(mapping, [(k, v) for k, v in mapping.entries if k.value not in keys])


def deep_merge(base: Map, over: Map) -> Map:
    """``over`` merged into ``base`` the way GitLab merges configuration.

    ActiveSupport's ``Hash#deep_merge``, which GitLab uses for ``include`` and ``extends``
    ("Override included configuration values" in docs.gitlab.com/ci/yaml/includes): two mappings
    under the same key are merged key by key, anything else (a list, a scalar) from ``over``
    replaces the value of ``base``. A key keeps its place in ``base``; new keys come after.
    The key node of ``over`` is kept so a problem points at the value that won.
    """
    entries = list(base.entries)
    where = {k.value: i for i, (k, _) in enumerate(entries) if isinstance(k.value, str)}
    for key, value in over.entries:
        i = where.get(key.value) if isinstance(key.value, str) else None
        if i is None:
            if isinstance(key.value, str):
                where[key.value] = len(entries)
            entries.append((key, value))
            continue
        old = entries[i][1]
        if isinstance(old, Map) and isinstance(value, Map):
            entries[i] = (key, deep_merge(old, value))
        else:
            entries[i] = (key, value)
    return new_map(over, entries)


def too_deep(root: Node, limit: int = MAX_DEPTH) -> Node | None:
    """The first node found deeper than ``limit`` levels under ``root``, or None.

    Iterative, and each shared (aliased) node is visited once at its greatest depth seen so
    far, so a file of many aliases costs its size, not its expanded size.
    """
    deepest: dict[int, int] = {}
    stack: list[tuple[Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return node
        if deepest.get(id(node), 0) >= depth:
            continue
        deepest[id(node)] = depth
        if isinstance(node, Map):
            stack.extend((value, depth + 1) for _, value in node.entries)
        elif isinstance(node, Seq):
            stack.extend((item, depth + 1) for item in node.items)
    return None


def plain(node: Node | None) -> object:
    """The Python value of a tree (dicts, lists, scalars), for tests and debugging output."""
    if isinstance(node, Map):
        return {key.value: plain(value) for key, value in node.entries}
    if isinstance(node, Seq):
        return [plain(item) for item in node.items]
    return node.value if isinstance(node, Scalar) else None
