"""The layers of the code, checked on its import graph (read from the AST of every module).

- ``cicd_cli`` only parses, calls the backend and renders: none of its modules imports ``flows``
  or ``backend.runner``, neither directly (anywhere in the module, functions included) nor
  through a module whose import, at import time, brings one of them in.
- ``backend.pipeline`` (the file format, its validation and plan) stands alone: it imports none
  of our packages but ``backend.errors``.

The checker is tested on a synthetic package, so a rule that could never fail is caught too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("backend", "cicd_cli", "flows")


@dataclass(frozen=True)
class Edge:
    """``source`` imports ``target``; ``eager`` when that runs at import time of ``source``."""

    source: str
    target: str
    eager: bool


def module_names(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Every module of ``packages`` under ``root``: dotted name -> file."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST, eager: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Import statements under ``node``; eager unless in a function or a TYPE_CHECKING block."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, eager
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _imports(child, False)
        elif isinstance(child, ast.If) and _is_type_checking(child):
            for statement in child.body:  # read by type checkers only
                yield from _imports(ast.Module(body=[statement], type_ignores=[]), False)
            for statement in child.orelse:
                yield from _imports(ast.Module(body=[statement], type_ignores=[]), eager)
        else:
            yield from _imports(child, eager)


def _with_parents(name: str, modules: dict[str, Path]) -> list[str]:
    """``a.b.c`` and the packages it lives in that are ours (importing it runs theirs first)."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in modules]


def edges(modules: dict[str, Path]) -> list[Edge]:
    """Every import of one of ``modules`` by another."""
    found = []
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node, eager in _imports(tree, True):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:  # relative: from the module's package, up level - 1 more
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [base]
                targets += [f"{base}.{alias.name}" for alias in node.names]  # submodules
            for target in targets:
                for module in _with_parents(target, modules):
                    if module != name:
                        found.append(Edge(name, module, eager))
    return found


def _within(module: str, prefixes: Iterable[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def reached(start: str, graph: list[Edge]) -> dict[str, list[str]]:
    """Modules imported when ``start``'s code runs: each with a chain of imports leading to it.

    ``start``'s own imports all count (its functions run too); from there on only what runs at
    import time of each module imported.
    """
    eager: dict[str, list[str]] = {}
    every: dict[str, list[str]] = {}
    for edge in graph:
        every.setdefault(edge.source, []).append(edge.target)
        if edge.eager:
            eager.setdefault(edge.source, []).append(edge.target)
    chains = {target: [start, target] for target in every.get(start, [])}
    todo = list(chains)
    while todo:
        module = todo.pop()
        for target in eager.get(module, []):
            if target not in chains and target != start:
                chains[target] = [*chains[module], target]
                todo.append(target)
    return chains


def layer_violations(
    modules: dict[str, Path],
    layer: str,
    forbidden: Iterable[str],
    *,
    transitive: bool = True,
    allowed: Iterable[str] = (),
) -> list[str]:
    """``a -> b -> c`` for every module of ``layer`` that reaches a ``forbidden`` one."""
    graph = edges(modules)
    forbidden, allowed = tuple(forbidden), tuple(allowed)
    problems = []
    for module in sorted(m for m in modules if _within(m, (layer,))):
        if transitive:
            chains = reached(module, graph)
        else:
            chains = {e.target: [module, e.target] for e in graph if e.source == module}
        for target, chain in sorted(chains.items()):
            if _within(target, forbidden) and not _within(target, allowed):
                problems.append(" -> ".join(chain))
    return problems


# -- the rules of this code base ------------------------------------------------------------------


def test_import_graph_cli_imports_no_flows_or_runner() -> None:
    modules = module_names(ROOT, PACKAGES)

    problems = layer_violations(modules, "cicd_cli", ["flows", "backend.runner"])

    assert problems == []


def test_import_graph_pipeline_imports_none_of_our_other_packages() -> None:
    modules = module_names(ROOT, PACKAGES)

    problems = layer_violations(
        modules,
        "backend.pipeline",
        PACKAGES,
        transitive=False,
        allowed=["backend.pipeline", "backend.errors", "backend"],
    )

    assert problems == []


# -- the checker itself, on a synthetic package --------------------------------------------------


def _package(root: Path, files: dict[str, str]) -> dict[str, Path]:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return module_names(root, ["app", "core", "engine"])


SYNTHETIC = {
    "app/__init__.py": "",
    "core/__init__.py": "",
    "engine/__init__.py": "",
    "engine/heavy.py": "import os\n",
}


def test_layer_violations_direct_import_found(tmp_path: Path) -> None:
    modules = _package(tmp_path, {**SYNTHETIC, "app/cli.py": "from engine.heavy import x\n"})

    problems = layer_violations(modules, "app", ["engine"])

    assert problems == ["app.cli -> engine", "app.cli -> engine.heavy"]


def test_layer_violations_import_inside_a_function_found(tmp_path: Path) -> None:
    text = "def main():\n    import engine.heavy\n"
    modules = _package(tmp_path, {**SYNTHETIC, "app/cli.py": text})

    assert "app.cli -> engine.heavy" in layer_violations(modules, "app", ["engine"])


def test_layer_violations_through_a_module_at_import_time_found(tmp_path: Path) -> None:
    files = {
        **SYNTHETIC,
        "app/cli.py": "def main():\n    from core import service\n",
        "core/service.py": "from . import helpers\n",
        "core/helpers.py": "import engine.heavy as heavy\n",
    }
    modules = _package(tmp_path, files)

    problems = layer_violations(modules, "app", ["engine"])

    assert "app.cli -> core.service -> core.helpers -> engine.heavy" in problems


def test_layer_violations_lazy_or_type_checking_import_further_down_allowed(
    tmp_path: Path,
) -> None:
    files = {
        **SYNTHETIC,
        "app/cli.py": "from core import service\n",
        "core/service.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from engine.heavy import Runner\n"
            "def run():\n    from engine import heavy\n"
        ),
    }
    modules = _package(tmp_path, files)

    assert layer_violations(modules, "app", ["engine"]) == []


def test_layer_violations_not_transitive_counts_direct_imports_only(tmp_path: Path) -> None:
    files = {
        **SYNTHETIC,
        "core/model.py": "from core import errors\nfrom app import cli\n",
        "core/errors.py": "import engine\n",
        "app/cli.py": "",
    }
    modules = _package(tmp_path, files)

    problems = layer_violations(
        modules, "core", ["app", "core", "engine"], transitive=False, allowed=["core"]
    )

    assert problems == ["core.errors -> engine", "core.model -> app", "core.model -> app.cli"]


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("from .. import heavy\n", "engine.sub.mod -> engine.heavy"),
        ("from ..heavy import thing\n", "engine.sub.mod -> engine.heavy"),
    ],
)
def test_edges_relative_import_resolved(tmp_path: Path, statement: str, expected: str) -> None:
    files = {**SYNTHETIC, "engine/sub/__init__.py": "", "engine/sub/mod.py": statement}
    modules = _package(tmp_path, files)

    problems = layer_violations(modules, "engine.sub", ["engine.heavy"], transitive=False)

    assert problems == [expected]
