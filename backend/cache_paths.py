"""Which workspace entries a cache's ``paths`` name: regular files and symlinks, as they are.

The pattern syntax is the artifacts' (``backend.runner.artifacts``, docs/pipeline-format.md):
``path``, ``dir/``, ``*``, ``?`` and ``**``, relative to the workspace, never absolute nor with
a ``..`` segment. Unlike artifacts, a cache keeps symlinks as symlinks, whatever their target
(a virtualenv's ``bin/python -> /usr/local/bin/python3``, pnpm's symlinked package folders),
as GitLab's runner does: a link is read with ``readlink``, never followed, so nothing outside
the workspace is read; a symlinked directory is kept as the link, never descended into.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from backend.runner.artifacts import ArtifactPatternError


def match_cache_paths(
    workspace: Path, patterns: list[str], tracked: frozenset[str] | None = None
) -> tuple[list[str], list[str]]:
    """Entries of ``workspace`` the patterns name (sorted relative POSIX paths), and warnings.

    With ``tracked`` (the commit's files), every entry not in it is added (``untracked``).
    Raises ``ArtifactPatternError`` for a pattern that reaches outside the workspace.
    """
    found: set[str] = set()
    warnings: list[str] = []
    for pattern in patterns:
        matched = _match(workspace, pattern)
        if not matched:
            warnings.append(f"cache pattern '{pattern}' matched no files")
        found |= matched
    if tracked is not None:
        found |= {rel for rel in _entries(workspace, "") if rel not in tracked}
    return sorted(found), warnings


def _match(root: Path, pattern: str) -> set[str]:
    text = pattern.strip()
    if text.startswith("/") or ".." in text.split("/") or "\0" in text:
        raise ArtifactPatternError(f"cache pattern '{pattern}' escapes the workspace")
    dir_only = text.endswith("/")
    segments = [s for s in text.split("/") if s not in ("", ".")]
    if not segments:
        return _entries(root, "") if text else set()
    literal = 0
    while literal < len(segments) and "*" not in segments[literal] and "?" not in segments[literal]:
        literal += 1
    if literal == len(segments):  # no glob: that entry (a folder: everything under it)
        rel = "/".join(segments)
        if not _real_dirs(root, segments[:-1]):
            return set()
        path = root / rel
        if dir_only and (path.is_symlink() or not path.is_dir()):
            return set()
        return _entries(root, rel)
    base = segments[:literal]
    if not _real_dirs(root, base) or not root.joinpath(*base).is_dir():
        return set()
    regex = _compile(segments)
    found: set[str] = set()
    for rel, is_dir in _walk(root, "/".join(base)):
        if is_dir:
            continue
        named = not dir_only and regex.fullmatch(rel)
        if named or any(regex.fullmatch(parent) for parent in _parents(rel)):
            found.add(rel)
    return found


def _entries(root: Path, rel: str) -> set[str]:
    return {r for r, is_dir in _walk(root, rel) if not is_dir}


def _walk(root: Path, rel: str) -> list[tuple[str, bool]]:
    """(path, is_dir) under ``root/rel``: real dirs, regular files, symlinks (not followed)."""
    start = root / rel if rel else root
    out: list[tuple[str, bool]] = []
    if start.is_symlink() or not start.is_dir():
        try:
            mode = start.lstat().st_mode
        except OSError:
            return out
        if stat.S_ISLNK(mode) or stat.S_ISREG(mode):
            out.append((rel, False))
        return out
    for dirpath, dirnames, filenames in os.walk(start, followlinks=False):
        prefix = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if prefix == "." else prefix + "/"
        for name in dirnames:
            is_link = (Path(dirpath) / name).is_symlink()  # os.walk lists a dir link here
            out.append((prefix + name, not is_link))
        for name in filenames:
            mode = (Path(dirpath) / name).lstat().st_mode
            if stat.S_ISLNK(mode) or stat.S_ISREG(mode):
                out.append((prefix + name, False))
    return out


def _real_dirs(root: Path, segments: list[str]) -> bool:
    """Whether each folder ``segments`` names is a real directory (a symlink is not entered)."""
    path = root
    for part in segments:
        path = path / part
        if path.is_symlink() or not path.is_dir():
            return False
    return True


def _parents(rel: str) -> list[str]:
    parts = rel.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _compile(segments: list[str]) -> re.Pattern[str]:
    out = ""
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == "**":
            out += ".*" if last else "(?:[^/]+/)*"
            continue
        for ch in seg:
            out += "[^/]*" if ch == "*" else "[^/]" if ch == "?" else re.escape(ch)
        out += "" if last else "/"
    return re.compile(out)
