"""Read a pipeline file into a tree of positioned YAML nodes (YAML 1.2 core schema).

Every node keeps the 1-based line and column where it starts, so validation can point at the
offending key or value. The tree is built from the parser's event stream, not from a constructed
document: that is what lets us report *every* duplicate key, merge ``<<`` keys ourselves, refuse
recursive aliases and never recurse (deeply nested input cannot overflow the stack).

Parsing uses libyaml's event parser when PyYAML was built with it, because it is about twenty
times faster than the pure-Python parser on large files. Only the *syntax* comes from it: scalars
are resolved here with the YAML 1.2 core schema (``yes``/``no``/``on``/``off`` stay strings).
When libyaml rejects a document, ruamel.yaml parses it again, so the syntax error reported (and its
position) is always ruamel's; ruamel is also the only parser when libyaml is absent.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from backend.errors import PipelineInvalid, Problem

try:  # libyaml is optional: only a faster syntax parser, never a different meaning
    import yaml as _pyyaml

    _LIBYAML_LOADER: Any = _pyyaml.CSafeLoader if _pyyaml.__with_libyaml__ else None
except ImportError:  # pragma: no cover - depends on the environment
    _pyyaml = None
    _LIBYAML_LOADER = None

Scalar_T = str | int | float | bool | None

MiB = 1024 * 1024
# A pipeline file's size. GitLab refuses a config whose *loaded* size passes 2 MB
# (max_yaml_size_bytes); real files are a few KB, so 1 MiB of text is room enough.
MAX_FILE_BYTES = 1 * MiB
# What a file may expand to once every alias is replaced by its anchor: each node weighs 1, plus
# its text for a scalar. Aliases share nodes, so loading stays small, but whatever later walks
# or copies the values (validation, the plan, JSON to a server, the dry-run) pays the expanded
# size: without a bound a 300 KB file of aliases becomes gigabytes of script. 16 MiB lets a
# 1 MiB file reuse its anchors many times over and still bounds every consumer.
MAX_EXPANDED = 16 * MiB
# Keys ``<<`` merges may copy in one file: a template of 10 keys merged into 10,000 jobs.
MAX_MERGED_KEYS = 100_000

_YAML_TAG = "tag:yaml.org,2002:"
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT10 = re.compile(r"^[-+]?[0-9]+$")
_INT8 = re.compile(r"^0o[0-7]+$")
_INT16 = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INF = re.compile(r"^[-+]?\.(?:inf|Inf|INF)$")
_NAN = re.compile(r"^\.(?:nan|NaN|NAN)$")
_NON_STRING_STARTS = frozenset("~nNtTfF0123456789+-.")  # first characters of the patterns above


@dataclass(eq=False, slots=True)  # slots: a 1 MiB file can hold half a million nodes
class Node:
    """A YAML node and where it starts (1-based); ``override`` names the override that set it.

    ``file`` is the file the node was read from (the name given to ``parse_yaml``): once several
    files are merged into one tree, as GitLab's ``include:`` does, a problem still points into
    the right file. ``tag`` is a custom tag ``parse_yaml`` was asked to keep (``!reference``).
    """

    line: int
    col: int
    override: str | None = field(default=None, kw_only=True)
    file: str | None = field(default=None, kw_only=True)
    tag: str | None = field(default=None, kw_only=True)


@dataclass(eq=False, slots=True)
class Scalar(Node):
    """A scalar: ``value`` resolved with the YAML 1.2 core schema, ``text`` as written."""

    value: Scalar_T = None
    text: str = ""


@dataclass(eq=False, slots=True)
class Seq(Node):
    """A sequence of nodes."""

    items: list[Node] = field(default_factory=list)


@dataclass(eq=False, slots=True)
class Map(Node):
    """A mapping. ``entries`` keeps every key in file order; ``get`` sees the first of each."""

    entries: list[tuple[Scalar, Node]] = field(default_factory=list)
    _index: dict[str, tuple[Scalar, Node]] = field(default_factory=dict, repr=False)

    def reindex(self) -> None:
        """Rebuild the lookup table after ``entries`` changed (first occurrence of a key wins)."""
        self._index = {}
        for key, value in self.entries:
            if isinstance(key.value, str) and key.value not in self._index:
                self._index[key.value] = (key, value)

    def get(self, key: str) -> Node | None:
        """The value node of string key ``key``, or None."""
        found = self._index.get(key)
        return found[1] if found else None

    def key_node(self, key: str) -> Scalar | None:
        """The key node of string key ``key``, or None."""
        found = self._index.get(key)
        return found[0] if found else None

    def set(self, key: Scalar, value: Node) -> None:
        """Replace the value of ``key`` (keeping its place), or append a new entry."""
        for i, (k, _) in enumerate(self.entries):
            if k.value == key.value and isinstance(k.value, str):
                self.entries[i] = (k, value)
                break
        else:
            self.entries.append((key, value))
        self.reindex()


def describe(node: Node | None) -> str:
    """A short phrase for a node in messages: ``'abc'``, ``5``, ``true``, ``null``, ``a list``."""
    if node is None:
        return "nothing"
    if isinstance(node, Seq):
        return "a list"
    if isinstance(node, Map):
        return "a mapping"
    assert isinstance(node, Scalar)
    value = node.value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return repr(shown) if "'" not in shown else '"' + shown.replace('"', '\\"') + '"'
    return node.text


def resolve_plain(text: str) -> Scalar_T:
    """Resolve an untagged plain scalar with the YAML 1.2 core schema (the whole text)."""
    if text and text[0] not in _NON_STRING_STARTS:  # most scalars: no pattern can match
        return text
    if _NULL.fullmatch(text):
        return None
    if _BOOL.fullmatch(text):
        return text.lower() == "true"
    if _INT10.fullmatch(text):
        return int(text)
    if _INT8.fullmatch(text):
        return int(text[2:], 8)
    if _INT16.fullmatch(text):
        return int(text[2:], 16)
    if _FLOAT.fullmatch(text):
        return float(text)
    if _INF.fullmatch(text):
        return -math.inf if text.startswith("-") else math.inf
    if _NAN.fullmatch(text):
        return math.nan
    return text


def _resolve_tagged(tag: str, text: str) -> Scalar_T:
    """Resolve a scalar with an explicit ``!!`` tag; ValueError when the text does not fit."""
    kind = tag[len(_YAML_TAG) :]
    if kind == "str":
        return text
    value = resolve_plain(text)
    types: dict[str, type | tuple[type, ...]] = {
        "int": int,
        "float": (int, float),
        "bool": bool,
        "null": type(None),
    }
    expected = types.get(kind)
    if expected is None or not isinstance(value, expected):
        raise ValueError(kind)
    if kind == "int" and isinstance(value, bool):
        raise ValueError(kind)
    if kind == "float" and not isinstance(value, bool):
        return float(value)  # type: ignore[arg-type]
    return value


class _Builder:
    """Turn a YAML event stream into a ``Node`` tree, iteratively, collecting problems."""

    def __init__(
        self, filename: str, keep_tags: frozenset[str] = frozenset(), ruby_merges: bool = False
    ) -> None:
        self.filename = filename
        self.keep_tags = keep_tags
        self.ruby_merges = ruby_merges
        self.problems: list[Problem] = []
        self.anchors: dict[str, Node] = {}
        self.open_anchors: set[str] = set()
        self.weights: dict[str, int] = {}  # anchor -> its expanded weight (see MAX_EXPANDED)
        self.expanded = 0  # the document's expanded weight so far
        self.merged = 0  # keys copied by '<<' merges so far

    def problem(self, line: int, col: int, message: str) -> None:
        self.problems.append(Problem(self.filename, line, col, message))

    def build(self, events: Iterable[Any]) -> Node | None:
        root: Node | None = None
        documents = 0
        # Each open collection: (node, anchor, pending key for maps)
        stack: list[list[Any]] = []

        def attach(node: Node) -> None:
            nonlocal root
            if not stack:
                root = node
                return
            top = stack[-1]
            parent = top[0]
            if isinstance(parent, Seq):
                parent.items.append(node)
            elif top[2] is None:
                top[2] = node  # a key, waiting for its value
            else:
                key = top[2]
                top[2] = None
                self._add_entry(parent, key, node)

        for event in events:
            name = type(event).__name__
            mark = event.start_mark
            line, col = mark.line + 1, mark.column + 1
            if name == "ScalarEvent":
                node = self._scalar(event, line, col)
                weight = len(event.value) + 1
                self._grow(weight, line, col, None)
                if event.anchor:
                    self.anchors[event.anchor] = node
                    self.weights[event.anchor] = weight
                attach(node)
            elif name in ("MappingStartEvent", "SequenceStartEvent"):
                kept = self._check_collection_tag(event.tag, name, line, col)
                coll: Node = (
                    Map(line, col, file=self.filename, tag=kept)
                    if name == "MappingStartEvent"
                    else Seq(line, col, file=self.filename, tag=kept)
                )
                if event.anchor:
                    self.anchors[event.anchor] = coll
                    self.open_anchors.add(event.anchor)
                stack.append([coll, event.anchor, None, self.expanded])
                self._grow(1, line, col, None)
            elif name in ("MappingEndEvent", "SequenceEndEvent"):
                coll, anchor, _, start = stack.pop()
                if isinstance(coll, Map):
                    self._finish_map(coll)
                if anchor:
                    self.open_anchors.discard(anchor)
                    self.weights[anchor] = self.expanded - start  # aliases inside included
                attach(coll)
            elif name == "AliasEvent":
                self._grow(self.weights.get(event.anchor, 1), line, col, event.anchor)
                attach(self._alias(event.anchor, line, col))
            elif name == "DocumentStartEvent":
                documents += 1
                if documents > 1:
                    self.problem(
                        line, col, "invalid YAML: expected a single document, found another"
                    )
                    break
        return root

    def _grow(self, weight: int, line: int, col: int, alias: str | None) -> None:
        """Add ``weight`` to the expanded size; past ``MAX_EXPANDED`` the file is refused.

        Refused at once, with this one problem: whatever else is wrong in such a file, the
        size is what the author has to fix first.
        """
        self.expanded += weight
        if self.expanded <= MAX_EXPANDED:
            return
        limit = f"the {MAX_EXPANDED // MiB} MiB limit"
        message = (
            f"alias '*{alias}' expands the file beyond {limit} (every use of an anchor "
            "counts its whole size)"
            if alias is not None
            else f"the file expands beyond {limit}"
        )
        raise PipelineInvalid([Problem(self.filename, line, col, message)])

    def _scalar(self, event: Any, line: int, col: int) -> Scalar:
        text: str = event.value
        tag: str | None = event.tag
        kept = None
        if tag in (None, "!"):
            value: Scalar_T = resolve_plain(text) if not event.style and tag is None else text
        elif tag.startswith(_YAML_TAG):
            try:
                value = _resolve_tagged(tag, text)
            except ValueError:
                self.problem(line, col, f"cannot read {text!r} as YAML tag '{tag}'")
                value = text
        elif tag in self.keep_tags:
            value, kept = text, tag
        else:
            self.problem(line, col, f"unsupported YAML tag '{tag}'")
            value = text
        return Scalar(line, col, value=value, text=text, file=self.filename, tag=kept)

    def _check_collection_tag(self, tag: str | None, name: str, line: int, col: int) -> str | None:
        """Report a tag the collection cannot carry; return it when it is one to keep."""
        expected = _YAML_TAG + ("map" if name == "MappingStartEvent" else "seq")
        if tag in self.keep_tags:
            return tag
        if tag not in (None, "!", expected):
            self.problem(line, col, f"unsupported YAML tag '{tag}'")
        return None

    def _alias(self, anchor: str, line: int, col: int) -> Node:
        if anchor in self.open_anchors:
            self.problem(line, col, f"recursive alias '*{anchor}' refers to its own anchor")
            return Scalar(line, col, value=None, text="", file=self.filename)
        node = self.anchors.get(anchor)
        if node is None:
            self.problem(line, col, f"alias '*{anchor}' refers to no anchor '&{anchor}' before it")
            return Scalar(line, col, value=None, text="", file=self.filename)
        return node

    def _add_entry(self, mapping: Map, key: Node, value: Node) -> None:
        if not isinstance(key, Scalar):
            self.problem(key.line, key.col, f"mapping keys must be strings, not {describe(key)}")
            return
        mapping.entries.append((key, value))

    def _finish_map(self, mapping: Map) -> None:
        """Report duplicate keys; apply ``<<`` merges (explicit keys win, then the first merge)."""
        if self.ruby_merges:
            self._finish_map_in_order(mapping)
            return
        own: list[tuple[Scalar, Node]] = []
        merges: list[Map] = []
        seen: dict[tuple[type, Any], Scalar] = {}
        for key, value in mapping.entries:
            if key.value == "<<" and key.text == "<<":
                for source in self._merge_sources(value):
                    self._copying(len(source.entries), key)
                    merges.append(source)
                continue
            ident = (type(key.value), key.value)
            if self._duplicate(key, ident, seen):
                continue
            own.append((key, value))
        for source in merges:
            for key, value in source.entries:
                ident = (type(key.value), key.value)
                if ident not in seen:
                    seen[ident] = key
                    own.append((key, value))
        mapping.entries = own
        mapping.reindex()

    def _finish_map_in_order(self, mapping: Map) -> None:
        """Ruby's (Psych's) merges, which GitLab reads its files with: entries apply in order.

        A ``<<`` merges its mapping over the keys written before it (for a list of mappings the
        first one wins among them) and keys after it override it, so of two ``<<`` the later
        wins. Duplicate explicit keys are still reported.
        """
        result: dict[tuple[type, Any], tuple[Scalar, Node]] = {}
        seen: dict[tuple[type, Any], Scalar] = {}
        for key, value in mapping.entries:
            if key.value == "<<" and key.text == "<<":
                merged: dict[tuple[type, Any], tuple[Scalar, Node]] = {}
                for source in reversed(self._merge_sources(value)):
                    self._copying(len(source.entries), key)
                    for entry in source.entries:
                        merged[(type(entry[0].value), entry[0].value)] = entry
                result.update(merged)
                continue
            ident = (type(key.value), key.value)
            if self._duplicate(key, ident, seen):
                continue
            result[ident] = (key, value)
        mapping.entries = list(result.values())
        mapping.reindex()

    def _duplicate(self, key: Scalar, ident: tuple[type, Any], seen: dict[Any, Scalar]) -> bool:
        """Whether ``key`` was seen before in its mapping (reported), else note it."""
        first = seen.get(ident)
        if first is not None:
            message = f"duplicate key '{key.text}' (first defined at line {first.line})"
            self.problem(key.line, key.col, message)
            return True
        seen[ident] = key
        return False

    def _copying(self, count: int, key: Scalar) -> None:
        """Count ``count`` keys a ``<<`` merge copies; past ``MAX_MERGED_KEYS`` refuse the file.

        Unlike an alias, a merge copies: ``&m2 {<<: *m1}`` a few thousand times over a big
        ``m1`` would fill memory while loading, before anything could weigh the result.
        """
        self.merged += count
        if self.merged > MAX_MERGED_KEYS:
            message = f"merge keys '<<' copy more than {MAX_MERGED_KEYS} keys in all, the limit"
            raise PipelineInvalid([Problem(self.filename, key.line, key.col, message)])

    def _merge_sources(self, value: Node) -> list[Map]:
        if isinstance(value, Map):
            return [value]
        if isinstance(value, Seq) and all(isinstance(item, Map) for item in value.items):
            return [item for item in value.items if isinstance(item, Map)]
        self.problem(value.line, value.col, "merge key '<<' needs a mapping or a list of mappings")
        return []


def _events_ruamel(text: str) -> Iterator[Any]:
    yield from YAML(typ="safe", pure=True).parse(text)


class _SyntaxFailure(Exception):
    """The parser gave up on the text; ``cause`` is its own exception."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _guarded(events: Iterator[Any]) -> Iterator[Any]:
    """Pass events through; whatever the parser raises becomes a ``_SyntaxFailure``."""
    try:
        yield from events
    except Exception as exc:  # ruamel raises YAMLError, but odd input can surface others
        raise _SyntaxFailure(exc) from None


def _events_libyaml(text: str) -> Iterator[Any]:
    assert _pyyaml is not None
    # streamed, never listed: a list of a big file's events weighs hundreds of MB
    return _pyyaml.parse(text, Loader=_LIBYAML_LOADER)


def _syntax_problem(filename: str, exc: Exception) -> Problem:
    """One positioned problem from a ruamel parse error."""
    if getattr(exc, "problem_mark", None) is not None:  # ruamel's or PyYAML's MarkedYAMLError
        mark: Any = exc.problem_mark  # type: ignore[attr-defined]
        message = f"invalid YAML: {exc.problem}"  # type: ignore[attr-defined]
        if exc.context:  # type: ignore[attr-defined]
            where = exc.context_mark  # type: ignore[attr-defined]
            at = f" at line {where.line + 1}" if where is not None else ""
            message += f" ({exc.context}{at})"  # type: ignore[attr-defined]
        return Problem(filename, mark.line + 1, mark.column + 1, message)
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return Problem(filename, 1, 1, f"invalid YAML: {detail}")


def parse_yaml(
    text: str,
    filename: str,
    *,
    keep_tags: frozenset[str] = frozenset(),
    ruby_merges: bool = False,
) -> tuple[Node | None, list[Problem]]:
    """Parse ``text`` into a node tree; syntax errors raise, softer problems are returned.

    Returns the root node (None for an empty document) and the problems found while building the
    tree (duplicate keys, bad aliases, unsupported tags). Raises ``PipelineInvalid`` when the text
    is not YAML at all. Tags in ``keep_tags`` (GitLab's ``!reference``) are not problems: they
    stay on their node's ``tag`` for the caller to interpret; the native format keeps none.
    ``ruby_merges`` applies ``<<`` in order, as Ruby's YAML does for GitLab's own files.
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    if _LIBYAML_LOADER is not None:
        builder = _Builder(filename, keep_tags, ruby_merges)
        try:
            root = builder.build(_guarded(_events_libyaml(text)))
            return root, sorted(builder.problems)
        except _SyntaxFailure as failure:  # any libyaml complaint: ruamel parses it and words it
            if "nesting depth" in str(failure.cause):  # ruamel is quadratic in depth: not it
                raise PipelineInvalid([_syntax_problem(filename, failure.cause)]) from None
    builder = _Builder(filename, keep_tags, ruby_merges)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            root = builder.build(_guarded(_events_ruamel(text)))
    except _SyntaxFailure as failure:
        raise PipelineInvalid([_syntax_problem(filename, failure.cause)]) from None
    return root, sorted(builder.problems)


def too_large(filename: str) -> Problem:
    """The problem of a pipeline file over ``MAX_FILE_BYTES``."""
    return Problem(filename, 1, 1, f"file is larger than {MAX_FILE_BYTES // MiB} MiB, the limit")


def check_size(text: str, filename: str) -> None:
    """Raise ``PipelineInvalid`` when ``text`` is over ``MAX_FILE_BYTES`` in UTF-8."""
    # a character is 1 to 4 bytes: count the bytes only when the characters cannot decide
    if len(text) > MAX_FILE_BYTES or (
        len(text) * 4 > MAX_FILE_BYTES
        and len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES
    ):
        raise PipelineInvalid([too_large(filename)])


def read_text(path: Path, filename: str) -> str:
    """The file's text; a missing, unreadable or non-UTF-8 file raises ``PipelineInvalid``."""
    try:
        with path.open("rb") as handle:  # never more than the limit: -f /dev/zero must end
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise PipelineInvalid([Problem(filename, 1, 1, "file not found")]) from None
    except IsADirectoryError:
        raise PipelineInvalid([Problem(filename, 1, 1, "is a directory, not a file")]) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PipelineInvalid([Problem(filename, 1, 1, f"cannot read file: {reason}")]) from None
    if len(data) > MAX_FILE_BYTES:
        raise PipelineInvalid([too_large(filename)])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        col = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", "replace")) + 1
        byte = data[exc.start]
        message = f"file is not valid UTF-8 (byte 0x{byte:02x})"
        raise PipelineInvalid([Problem(filename, line, col, message)]) from None
