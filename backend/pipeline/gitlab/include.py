"""``include:`` of local files: one positioned mapping from a ``.gitlab-ci.yml`` and its includes.

Follows GitLab's ``Gitlab::Ci::Config::External`` (lib/gitlab/ci/config/external/):

* an entry is a string (a URL means ``remote``, anything else ``local``), ``{local: path}`` or
  a list of those; ``project``, ``remote``, ``template``, ``component`` and ``artifact`` need a
  GitLab server and are refused, positioned at the entry;
* a local path is relative to the repository root whatever file includes it, leading slashes
  removed; it must end in ``.yml`` or ``.yaml``; a path holding ``*`` is a wildcard expanded
  like ``Repository#search_files_by_wildcard_path`` (``**/`` any directories or none, ``**``
  anything, ``*`` anything but ``/``), in path order, and may match nothing;
* included files are deep-merged in order, then the including file is merged over them, so its
  keys win (``Processor#merge_external_files!``); nested includes are expanded the same way;
* every file included counts toward 150 (``ci_max_includes``), a file included twice too. GitLab
  merges a repeated file again, which changes nothing; a file that includes itself, directly or
  not, would only end at that limit on GitLab: here it is refused at once with the chain.

Reading goes through a ``Source`` so this stays pure: ``DictSource`` is the in-memory one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Protocol

from backend.errors import PipelineInvalid, Problem
from backend.pipeline.gitlab.tree import MAX_DEPTH, deep_merge, new_map, problem_at, too_deep
from backend.pipeline.loader import Map, Node, Scalar, Seq, check_size, describe, parse_yaml

MAX_INCLUDES = 150  # GitLab's default ci_max_includes
KEEP_TAGS = frozenset({"!reference"})
SERVER_KINDS = ("project", "remote", "template", "component", "artifact")
_YAML_NAME = re.compile(r".+\.(yml|yaml)", re.IGNORECASE)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


class Source(Protocol):
    """The files of one repository revision, as GitLab sees them for ``include:local``."""

    def read(self, path: str) -> str:
        """The text of ``path`` (relative to the root); ``FileNotFoundError`` when absent."""
        ...

    def paths(self) -> Iterable[str]:
        """Every file path in the revision, relative to the root (for wildcards)."""
        ...


class DictSource:
    """A ``Source`` held in memory: path -> text."""

    def __init__(self, files: Mapping[str, str]) -> None:
        self.files = dict(files)

    def read(self, path: str) -> str:
        """The text of ``path``; ``FileNotFoundError`` when it is not in the mapping."""
        try:
            return self.files[path]
        except KeyError:
            raise FileNotFoundError(path) from None

    def paths(self) -> Iterable[str]:
        """The paths of the mapping."""
        return list(self.files)


def wildcard_regex(pattern: str) -> re.Pattern[str]:
    """GitLab's wildcard grammar for local include paths, as a regular expression.

    ``Repository#search_files_by_wildcard_path``: escape the whole path, then un-escape
    ``**/`` (any run of directories, or none), ``**`` (anything) and ``*`` (anything but ``/``),
    in that order; ``?``, ``[`` and ``{`` stay literal.
    """
    text = re.escape(pattern.lstrip("/"))
    text = text.replace(r"\*\*/", "(?:.*?/)?").replace(r"\*\*", ".*?").replace(r"\*", "[^/]*?")
    return re.compile(text)


class _Expander:
    """Reads files and expands their includes, collecting every problem."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.problems: list[Problem] = []
        self.count = 0
        self._paths: list[str] | None = None

    def all_paths(self) -> list[str]:
        if self._paths is None:
            self._paths = sorted(p.lstrip("/") for p in self.source.paths())
        return self._paths

    def parse(self, path: str, text: str) -> Map | None:
        """The file's root mapping, or None after reporting why there is none."""
        try:
            check_size(text, path)
            root, problems = parse_yaml(text, path, keep_tags=KEEP_TAGS, ruby_merges=True)
        except PipelineInvalid as invalid:
            self.problems.extend(invalid.problems)
            return None
        self.problems.extend(problems)
        if root is None:
            return None
        if not isinstance(root, Map):
            message = f"a GitLab CI file must be a mapping of keys, not {describe(root)}"
            self.problems.append(problem_at(root, message, path))
            return None
        deep = too_deep(root)
        if deep is not None:
            message = f"nested more than {MAX_DEPTH} levels deep, GitLab's limit"
            self.problems.append(problem_at(deep, message, path))
            return None
        return root

    def expand(self, root: Map, chain: tuple[str, ...]) -> Map:
        """``root`` with its includes merged under it and its ``include`` key removed."""
        merged: Map | None = None
        include = root.get("include")
        for path, entry in self.locations(include) if include is not None else []:
            content = self.included(path, entry, chain)
            if content is not None:
                merged = content if merged is None else deep_merge(merged, content)
            if self.count > MAX_INCLUDES:
                break
        own = new_map(root, [(k, v) for k, v in root.entries if k.value != "include"])
        return own if merged is None else deep_merge(merged, own)

    def included(self, path: str, entry: Node, chain: tuple[str, ...]) -> Map | None:
        """The expanded content of the included ``path``, or None after a problem."""
        self.count += 1
        if self.count > MAX_INCLUDES:
            message = f"more than {MAX_INCLUDES} files included in all, GitLab's limit"
            self.problems.append(problem_at(entry, message))
            return None
        if path in chain:
            cycle = " -> ".join((*chain[chain.index(path) :], path))
            message = f"include of '{path}' is circular: {cycle}"
            self.problems.append(problem_at(entry, message))
            return None
        try:
            text = self.source.read(path)
        except (FileNotFoundError, IsADirectoryError):
            self.problems.append(problem_at(entry, f"local file '{path}' does not exist"))
            return None
        except (OSError, UnicodeDecodeError) as exc:
            message = f"local file '{path}' cannot be read: {type(exc).__name__}"
            self.problems.append(problem_at(entry, message))
            return None
        if not text.strip():
            self.problems.append(problem_at(entry, f"local file '{path}' is empty"))
            return None
        before = len(self.problems)
        root = self.parse(path, text)
        if root is None:
            if len(self.problems) == before:  # comments only
                self.problems.append(problem_at(entry, f"local file '{path}' is empty"))
            return None
        return self.expand(root, (*chain, path))

    def locations(self, include: Node) -> list[tuple[str, Node]]:
        """Each local path ``include`` names, with the node to point at for its problems."""
        entries = include.items if isinstance(include, Seq) else [include]
        found: list[tuple[str, Node]] = []
        for entry in entries:
            location = self.location(entry)
            if location is None:
                continue
            path, node = location
            if "*" not in path:
                found.append((path, node))
                continue
            pattern = wildcard_regex(path)
            found.extend((p, node) for p in self.all_paths() if pattern.fullmatch(p))
        return found

    def location(self, entry: Node) -> tuple[str, Node] | None:
        """The local path of one include entry, or None after reporting why it has none."""
        if isinstance(entry, Scalar) and isinstance(entry.value, str):
            if _URL.match(entry.value):
                self.refuse_server(entry, "remote")
                return None
            return self.local_path(entry)
        if not isinstance(entry, Map):
            message = f"each include must be a mapping or a string, not {describe(entry)}"
            self.problems.append(problem_at(entry, message))
            return None
        for kind in SERVER_KINDS:
            if entry.get(kind) is not None:
                self.refuse_server(entry.key_node(kind) or entry, kind)
                return None
        local = entry.get("local")
        if local is None:
            valid = ", ".join(("local", *SERVER_KINDS))
            message = f"include entry has no valid subkey (valid subkeys: {valid})"
            self.problems.append(problem_at(entry, message))
            return None
        for key, _ in entry.entries:
            if key.value in ("rules", "inputs"):
                message = f"include:{key.value} is not supported yet"
                self.problems.append(problem_at(key, message))
                return None
        if not (isinstance(local, Scalar) and isinstance(local.value, str)):
            message = f"included file needs to be a string, not {describe(local)}"
            self.problems.append(problem_at(local, message))
            return None
        return self.local_path(local)

    def local_path(self, node: Scalar) -> tuple[str, Node] | None:
        path = str(node.value).lstrip("/")
        if not _YAML_NAME.fullmatch(path.rsplit("/", 1)[-1]):
            message = f"included file '{path}' does not have a YAML extension (.yml or .yaml)"
            self.problems.append(problem_at(node, message))
            return None
        return path, node

    def refuse_server(self, node: Node, kind: str) -> None:
        message = f"include:{kind} needs a GitLab server; cicd includes local files only"
        self.problems.append(problem_at(node, message))


def load_config(path: str, source: Source) -> tuple[Map | None, list[Problem]]:
    """The configuration at ``path`` with every local include merged in, and all problems.

    The mapping returned has no ``include`` key; each node keeps the file it came from. It is
    None when the top file itself cannot be read as a mapping.
    """
    expander = _Expander(source)
    try:
        text = source.read(path)
    except FileNotFoundError:
        return None, [Problem(path, 1, 1, "file not found")]
    root = expander.parse(path, text)
    if root is None:
        return None, sorted(expander.problems)
    merged = expander.expand(root, (path,))
    return merged, sorted(expander.problems)
