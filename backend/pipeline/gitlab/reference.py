"""``!reference [.job, key, ...]`` tags: a value copied from elsewhere in the configuration.

Follows ``Gitlab::Ci::Config::Yaml::Tags`` (lib/gitlab/ci/config/yaml/tags/): after ``include``
and ``extends``, every tag anywhere in the tree (scripts, variables, image, needs, rules...) is
replaced by the value found by digging the path from the top level; that value is resolved in
turn, so references may nest, up to 10 deep (docs.gitlab.com/ci/yaml/yaml_optimization,
"Nest !reference tags"). The path must be a non-empty list of names; a path that digs into
something other than a mapping, or finds nothing, is refused, and so is a circular chain.
Flattening a list of lists (a reference inside a ``script`` list) is the job keys' business:
see ``backend.pipeline.gitlab.structure``.
"""

from __future__ import annotations

from backend.errors import Problem
from backend.pipeline.gitlab.tree import MAX_DEPTH, new_map, new_seq, problem_at
from backend.pipeline.loader import Map, Node, Scalar, Seq, describe
from backend.pipeline.validate import suggest

TAG = "!reference"
MAX_NESTING = 10


def show(path: list[str]) -> str:
    """A reference as written: ``!reference [.job, script]``."""
    return f"{TAG} [{', '.join(path)}]"


class _Resolver:
    def __init__(self, top: Map) -> None:
        self.top = top
        self.problems: list[Problem] = []
        self.memo: dict[int, Node] = {}  # id of a reference or collection -> its result
        self.active: list[int] = []

    def resolve(self, node: Node, depth: int) -> Node:
        """``node`` with every reference under it replaced; untouched subtrees are reused."""
        if node.tag == TAG:
            return self.reference(node, depth)
        if depth > MAX_DEPTH:
            message = f"nested more than {MAX_DEPTH} levels deep once references are resolved"
            self.problems.append(problem_at(node, message))
            return Scalar(node.line, node.col, value=None, file=node.file)
        if not isinstance(node, Map | Seq):
            return node
        # a subtree shared by aliases, or the target of many references, is walked once
        done = self.memo.get(id(node))
        if done is not None:
            return done
        result: Node = node
        if isinstance(node, Map):
            entries = [(key, self.resolve(value, depth + 1)) for key, value in node.entries]
            if any(
                new is not old for (_, new), (_, old) in zip(entries, node.entries, strict=True)
            ):
                result = new_map(node, entries)
        else:
            items = [self.resolve(item, depth + 1) for item in node.items]
            if any(new is not old for new, old in zip(items, node.items, strict=True)):
                result = new_seq(node, items)
        self.memo[id(node)] = result
        return result

    def reference(self, node: Node, depth: int) -> Node:
        """The resolved value of reference ``node``; a null scalar after a problem."""
        if id(node) in self.memo:
            return self.memo[id(node)]
        failed = Scalar(node.line, node.col, value=None, file=node.file)
        path = self.path(node)
        if path is None:
            return failed
        if id(node) in self.active:
            message = f"{show(path)} is part of a circular chain of references"
            self.problems.append(problem_at(node, message))
            return failed
        if len(self.active) >= MAX_NESTING:
            message = f"{show(path)} nests references more than {MAX_NESTING} deep"
            self.problems.append(problem_at(node, message))
            return failed
        target = self.lookup(node, path)
        if target is None:
            return failed
        self.active.append(id(node))
        value = self.resolve(target, depth)
        self.active.pop()
        self.memo[id(node)] = value
        return value

    def path(self, node: Node) -> list[str] | None:
        """The names of reference ``node``, or None after a problem."""
        if isinstance(node, Seq) and node.items:
            names = [i.value for i in node.items if isinstance(i, Scalar) and i.tag is None]
            if len(names) == len(node.items) and all(isinstance(n, str) for n in names):
                return [str(n) for n in names]
        message = f"{TAG} needs a list of names like [.job, script], not {describe(node)}"
        if isinstance(node, Seq) and node.items:
            message = f"{TAG} needs a list of names like [.job, script]"
        self.problems.append(problem_at(node, message))
        return None

    def lookup(self, node: Node, path: list[str]) -> Node | None:
        """The node ``path`` names from the top level, or None after a problem."""
        current: Node = self.top
        for i, name in enumerate(path):
            found = current.get(name) if isinstance(current, Map) else None
            if found is None:
                if i == 0:
                    why = f"no top-level entry '{name}'"
                elif isinstance(current, Map):
                    why = f"'{path[i - 1]}' has no key '{name}'"
                else:
                    why = f"'{path[i - 1]}' is {describe(current)}, not a mapping"
                names = [k.value for k, _ in current.entries] if isinstance(current, Map) else []
                hint = suggest(name, [n for n in names if isinstance(n, str)])
                message = f"{show(path)} could not be found: {why}{hint}"
                self.problems.append(problem_at(node, message))
                return None
            current = found
        return current


def resolve_references(top: Map) -> tuple[Map, list[Problem]]:
    """``top`` with every ``!reference`` tag replaced by its value, and all problems.

    A reference that cannot be resolved becomes null, after its problem is reported.
    """
    resolver = _Resolver(top)
    resolved = resolver.resolve(top, 1)
    assert isinstance(resolved, Map)
    return resolved, resolver.problems
