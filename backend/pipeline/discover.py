"""Pipeline files: load one (text or path), find them in ``.pipelines/``, check them all.

A GitLab file (``is_gitlab_file``) is read from a work tree by ``load_gitlab_file``: its includes
come from the same tree (``DirectorySource``), as ``cicd check`` and ``dry-run`` see it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from backend.errors import NotFound, PipelineInvalid, Problem
from backend.pipeline.gitlab.context import GitlabContext, is_gitlab_file
from backend.pipeline.loader import (
    MAX_FILE_BYTES,
    Map,
    Scalar,
    check_size,
    parse_yaml,
    read_text,
)
from backend.pipeline.model import Pipeline
from backend.pipeline.overrides import apply_overrides
from backend.pipeline.validate import validate_tree

SUFFIXES = (".yaml", ".yml")
GITLAB_FILE = ".gitlab-ci.yml"

__all__ = ["GITLAB_FILE", "DirectorySource", "GitlabContext", "is_gitlab_file", "load_gitlab_file"]


class DirectorySource:
    """The files of a work tree, for a GitLab file's ``include:`` and ``rules:exists``.

    Paths are relative to ``root`` (the repository's top folder, as GitLab resolves them); one
    that would leave it reads as missing. ``.git`` is never listed.
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._paths: list[str] | None = None

    def read(self, path: str) -> str:
        """The text of ``path``; ``FileNotFoundError`` when absent or outside the tree."""
        target = (self.root / path.lstrip("/")).resolve()
        if not target.is_relative_to(self.root):
            raise FileNotFoundError(path)
        with target.open("rb") as handle:  # never more than the limit: a FIFO or /dev/zero ends
            data = handle.read(MAX_FILE_BYTES + 1)
        return data.decode("utf-8")  # too large: the front end's size check reports it

    def paths(self) -> list[str]:
        """Every file under ``root`` but ``.git``'s, relative and sorted (listed on first use)."""
        if self._paths is None:
            found = []
            for folder, dirs, files in os.walk(self.root):
                dirs[:] = sorted(d for d in dirs if d != ".git")
                base = Path(folder).relative_to(self.root)
                found += [(base / name).as_posix() for name in files]
            self._paths = sorted(found)
        return self._paths


def load_gitlab_file(
    path: str | Path, root: str | Path, *, name: str, context: GitlabContext | None = None
) -> Pipeline:
    """Read, parse and validate the GitLab file at ``path`` of the work tree ``root``.

    Problems name files relative to ``root`` (``.gitlab-ci.yml``, ``ci/build.yml``). Raises
    ``PipelineInvalid``; a missing, unreadable or non-UTF-8 top file is a problem too.
    """
    full = Path(path).resolve()
    top = Path(root).resolve()
    if not full.is_relative_to(top):
        top = full.parent  # a file outside the tree can only include files beside it
    shown = full.relative_to(top).as_posix()
    read_text(full, shown)  # the top file's own problems (missing, not UTF-8...) first
    source = DirectorySource(top)
    from backend.pipeline.gitlab.front import load_gitlab  # only for a GitLab file

    return load_gitlab(shown, source, name=name, context=context or GitlabContext())


def parse_pipeline(text: str, filename: str, overrides: Sequence[str] = ()) -> Pipeline:
    """Parse and validate pipeline ``text``; problems name ``filename``.

    ``overrides`` (``KEY=VALUE``) are applied before validation and recorded in
    ``Pipeline.overrides``. Raises ``PipelineInvalid`` with every problem, sorted by position.
    """
    try:
        check_size(text, filename)  # text from git or an API caller never passed read_text
        root, problems = parse_yaml(text, filename)
        applied, override_problems = apply_overrides(root, overrides, filename)
        pipeline = validate_tree(root, filename, [*problems, *override_problems])
    except PipelineInvalid as exc:
        raise PipelineInvalid(sorted(_one_line(problem) for problem in exc.problems)) from None
    return pipeline.model_copy(update={"source": filename, "overrides": applied})


def _one_line(problem: Problem) -> Problem:
    """The problem with control characters (a newline in a quoted key...) escaped."""
    message = problem.message
    if message.isprintable():
        return problem
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
    return Problem(problem.file, problem.line, problem.column, shown)


def load_pipeline(
    path: str | Path, overrides: Sequence[str] = (), display_name: str | None = None
) -> Pipeline:
    """Read, parse and validate the pipeline file at ``path``.

    Problems (and ``Pipeline.source``) name the file ``display_name``, or ``path`` as given.
    Raises ``PipelineInvalid``; a missing, unreadable or non-UTF-8 file is a problem too.
    """
    filename = display_name if display_name is not None else str(path)
    return parse_pipeline(read_text(Path(path), filename), filename, overrides)


def find_pipelines(pipelines_dir: str | Path) -> list[Path]:
    """The ``*.yaml`` and ``*.yml`` files of ``pipelines_dir``, sorted by name (none if no dir)."""
    folder = Path(pipelines_dir)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES and p.is_file())


def load_all(pipelines_dir: str | Path) -> tuple[list[tuple[Path, Pipeline]], list[Problem]]:
    """Load every pipeline file of ``pipelines_dir``: the valid ones, and every problem found.

    Problems include pipeline names used by more than one file (reported at the later file's
    name). A file whose name clashes is not counted as valid.
    """
    valid: list[tuple[Path, Pipeline]] = []
    problems: list[Problem] = []
    for path in find_pipelines(pipelines_dir):
        try:
            valid.append((path, load_pipeline(path)))
        except PipelineInvalid as exc:
            problems.extend(exc.problems)
    owners: dict[str, Path] = {}
    unique: list[tuple[Path, Pipeline]] = []
    for path, pipeline in valid:
        first = owners.setdefault(pipeline.name, path)
        if first == path:
            unique.append((path, pipeline))
            continue
        line, col = _name_position(path)
        message = f"pipeline name '{pipeline.name}' is already used by {first}"
        problems.append(Problem(str(path), line, col, message))
    return unique, sorted(problems)


def find_pipeline_by_name(pipelines_dir: str | Path, name: str) -> Path:
    """The file of ``pipelines_dir`` whose ``pipeline.name`` is ``name``.

    Only reads each file's name, so an invalid file is still found (loading it then reports why).
    Raises ``NotFound`` listing the names there are.
    """
    names: list[str] = []
    unnamed: list[str] = []
    for path in find_pipelines(pipelines_dir):
        found = _name_of(path)
        if found == name:
            return path
        if found is None:
            unnamed.append(path.name)
        else:
            names.append(found)
    where = str(pipelines_dir).rstrip("/") + "/"
    if not names and not unnamed:
        raise NotFound(f"no pipeline named '{name}' in {where} (it has no *.yaml or *.yml files)")
    known = f"available: {', '.join(names) or 'none'}"
    if unnamed:
        known += f"; without a readable name: {', '.join(unnamed)}"
    raise NotFound(f"no pipeline named '{name}' in {where} ({known})")


def _pipeline_name_node(path: Path) -> Scalar | None:
    try:
        root, _ = parse_yaml(read_text(path, str(path)), str(path))
    except PipelineInvalid:
        return None
    head = root.get("pipeline") if isinstance(root, Map) else None
    node = head.get("name") if isinstance(head, Map) else None
    return node if isinstance(node, Scalar) and isinstance(node.value, str) else None


def _name_of(path: Path) -> str | None:
    node = _pipeline_name_node(path)
    return node.value if node is not None and isinstance(node.value, str) else None


def _name_position(path: Path) -> tuple[int, int]:
    node = _pipeline_name_node(path)
    return (node.line, node.col) if node is not None else (1, 1)
