"""``extends:``: a job (or hidden job) built on the top-level entries it names.

Follows ``Gitlab::Ci::Config::Extendable::Entry`` (lib/gitlab/ci/config/extendable/entry.rb):
``extends`` is a name or a list of names of top-level entries, each itself extended first; the
parents are deep-merged in the order listed (a later parent overrides an earlier one) and the
entry is merged over them (mappings merged key by key, lists and scalars replaced). A chain may
be 11 entries long (the entry and ten ancestors, MAX_NESTING_LEVELS = 10); a name that is not a
top-level key, a parent that is not a mapping and a circular chain are refused. GitLab runs this
after ``include`` and before ``!reference`` tags are resolved.
"""

from __future__ import annotations

from backend.errors import Problem
from backend.pipeline.gitlab.tree import deep_merge, new_map, problem_at, without
from backend.pipeline.loader import Map, Node, Scalar, Seq, describe
from backend.pipeline.validate import suggest

MAX_ANCESTORS = 10  # GitLab's MAX_NESTING_LEVELS: 11 levels with the entry itself


class _Extender:
    def __init__(self, top: Map) -> None:
        self.top = top
        self.done: dict[str, Map] = {}
        self.failed: set[str] = set()
        self.problems: list[Problem] = []

    def parents(self, name: str, node: Node) -> list[tuple[str, Scalar]] | None:
        """The parent names of ``extends`` value ``node``, or None after a problem."""
        if isinstance(node, Scalar) and node.value is None:
            return []  # GitLab's Array(nil): no parent
        items = node.items if isinstance(node, Seq) else [node]
        found: list[tuple[str, Scalar]] = []
        for item in items:
            if not (isinstance(item, Scalar) and isinstance(item.value, str)):
                message = f"'{name}': extends must be a name or a list of names, not "
                self.problems.append(problem_at(item, message + describe(item)))
                return None
            found.append((item.value, item))
        return found

    def extend(self, name: str, chain: tuple[str, ...]) -> Map | None:
        """Top-level entry ``name`` with its ``extends`` applied, or None when it cannot be."""
        if name in self.done:
            return self.done[name]
        if name in self.failed:
            return None
        value = self.top.get(name)
        assert isinstance(value, Map)
        extends = value.get("extends")
        if extends is None:
            self.done[name] = value
            return value
        parents = self.parents(name, extends)
        if parents is None:
            self.failed.add(name)
            return None
        merged: Map | None = None
        for parent, at in parents:
            base = self.parent(name, parent, at, chain)
            if base is None:
                self.failed.add(name)
                return None
            merged = base if merged is None else deep_merge(merged, base)
        own = without(value, "extends")
        result = own if merged is None else new_map(own, deep_merge(merged, own).entries)
        self.done[name] = result
        return result

    def parent(self, name: str, parent: str, at: Scalar, chain: tuple[str, ...]) -> Map | None:
        """The extended mapping of ``parent`` as named by ``name``, or None after a problem."""
        path = (*chain, name)
        if parent in path:
            cycle = " -> ".join((*path[path.index(parent) :], parent))
            message = f"'{name}': circular dependency in extends: {cycle}"
            self.problems.append(problem_at(at, message))
            return None
        base = self.top.get(parent)
        if base is None:
            names = [k.value for k, _ in self.top.entries if isinstance(k.value, str)]
            message = f"'{name}' extends unknown '{parent}'{suggest(parent, names)}"
            self.problems.append(problem_at(at, message))
            return None
        if not isinstance(base, Map):
            message = f"'{name}' extends '{parent}', which is {describe(base)}, not a mapping"
            self.problems.append(problem_at(at, message))
            return None
        # GitLab counts ancestors only for an entry that extends further (Entry#extend!)
        if base.get("extends") is not None and len(path) > MAX_ANCESTORS:
            message = f"'{name}': extends nests more than {MAX_ANCESTORS + 1} levels"
            self.problems.append(problem_at(at, message))
            return None
        return self.extend(parent, (*chain, name))


def apply_extends(top: Map) -> tuple[Map, list[Problem]]:
    """``top`` with every entry's ``extends`` applied (the key removed), and all problems.

    An entry whose ``extends`` cannot be applied is kept as written, without the key.
    """
    extender = _Extender(top)
    entries: list[tuple[Scalar, Node]] = []
    for key, value in top.entries:
        if isinstance(key.value, str) and isinstance(value, Map) and value.get("extends"):
            extended = extender.extend(key.value, ())
            value = extended if extended is not None else without(value, "extends")
        entries.append((key, value))
    return new_map(top, entries), extender.problems
