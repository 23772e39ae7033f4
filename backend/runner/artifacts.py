"""Artifacts: which workspace files a job's patterns name, copying them out, serving them back.

Pattern semantics (docs/pipeline-format.md, `artifacts`), always relative to the workspace root:

- ``path/to/file`` names that file; when the path is a directory, every file under it;
- ``dir/`` names every file under ``dir`` (and only a directory matches it);
- ``*`` matches within one path segment, ``?`` one character of a segment, ``**`` as a whole
  segment any number of segments (zero included); both match dotfiles, as in GitLab CI;
  ``[`` and every other character are literal;
- a glob that matches a directory names every file under it (``dist/*`` takes ``dist/sub/x``).

A pattern that is absolute or has a ``..`` segment raises ``ArtifactPatternError``. A pattern
that matches nothing is a warning. Symlinks are never followed out of the workspace (a warning
names each one skipped); a symlinked directory is never descended into; a symlink to a file
inside the workspace is collected as that file's content. Only regular files are collected.
A copy keeps the content and whether it is executable, nothing else: it is ours, mode 0755 or
0644, never setuid, setgid, sticky or writable by others, whatever the job (root in its
container) made of the original.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

from backend.errors import CicdError, NotFound

_CHUNK = 1024 * 1024
MAX_ARTIFACT_BYTES = 1024**3  # one job's artifacts, in all (GitLab's instance default: 100 MiB)
MAX_DOTENV_BYTES = 5 * 1024  # GitLab's dotenv_size default
MAX_DOTENV_VARIABLES = 20  # GitLab's dotenv_variables default (self-managed)
_DOTENV_KEY = re.compile(r"[A-Za-z0-9_]+")


class _TooBig(Exception):
    """The copy would pass the job's artifact limit."""


class ArtifactPatternError(CicdError):
    """An artifact pattern reaches outside the workspace (absolute, or with a ``..`` segment)."""


@dataclass(frozen=True)
class CollectedFile:
    """One artifact copied into the store."""

    path: str  # relative POSIX path in the workspace (and under the store's dest)
    size: int
    sha256: str
    stored_path: Path


@dataclass
class CollectResult:
    """What ``collect_artifacts`` copied, and the warnings to show in the job's log."""

    files: list[CollectedFile] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def match_artifacts(workspace: Path, patterns: list[str]) -> tuple[list[str], list[str]]:
    """Files of ``workspace`` named by ``patterns``: (sorted relative POSIX paths, warnings)."""
    root = workspace.resolve()
    found: set[str] = set()
    warnings: list[str] = []
    for pattern in patterns:
        matched = _match_one(root, pattern, warnings)
        if not matched:
            warnings.append(f"artifact pattern '{pattern}' matched no files")
        found.update(matched)
    return sorted(found), list(dict.fromkeys(warnings))


def collect_artifacts(
    workspace: Path,
    patterns: list[str],
    dest: Path,
    *,
    exclude: list[str] | None = None,
    tracked: frozenset[str] | None = None,
    max_bytes: int = MAX_ARTIFACT_BYTES,
) -> CollectResult:
    """Copy the files ``patterns`` name into ``dest`` (same relative paths), hashing as it goes.

    ``exclude`` patterns (same syntax) take files out again. With ``tracked`` (the commit's
    file list), every file of the workspace not in it is added too (``untracked: true``).
    At most ``max_bytes`` are kept in all: the files that would pass it are skipped with a
    warning (a job cannot fill the disk through its artifacts).
    """
    root = workspace.resolve()
    paths, warnings = match_artifacts(root, patterns) if patterns else ([], [])
    found = set(paths)
    if tracked is not None:
        found |= untracked_files(root, tracked, warnings)
    if exclude:
        for pattern in exclude:
            found -= _match_one(root, pattern, warnings)
    result = CollectResult(warnings=list(dict.fromkeys(warnings)))
    kept = 0
    for rel in sorted(found):
        source = root / rel
        if not _inside(root, source.resolve()):  # a link changed since matching
            result.warnings.append(f"artifact '{rel}' is a symlink out of the workspace; skipped")
            continue
        target = dest / rel
        try:
            size, digest = _copy_hashing(source, target, limit=max_bytes - kept)
        except _TooBig:
            target.unlink(missing_ok=True)
            result.warnings.append(
                f"artifact '{rel}' skipped: the job's artifacts would pass {_human(max_bytes)}"
            )
            continue
        except OSError as exc:
            target.unlink(missing_ok=True)
            result.warnings.append(f"artifact '{rel}' cannot be copied: {exc.strerror or exc}")
            continue
        kept += size
        result.files.append(CollectedFile(rel, size, digest, target))
    return result


def untracked_files(root: Path, tracked: frozenset[str], warnings: list[str]) -> set[str]:
    """Regular files under ``root`` whose relative path is not in ``tracked``."""
    return {rel for rel in _files_under(root, "", warnings) if rel not in tracked}


def tree_files(root: Path) -> frozenset[str]:
    """Relative POSIX paths of every file and symlink under ``root`` (a checkout's file list)."""
    out: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        prefix = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if prefix == "." else prefix + "/"
        out.update(prefix + name for name in filenames)
        out.update(prefix + n for n in dirnames if (Path(dirpath) / n).is_symlink())
    return frozenset(out)


def restore_files(files: list[tuple[str, Path]], workspace: Path) -> list[str]:
    """Copy stored artifacts (relative path, stored file) into ``workspace``; return warnings.

    A file already there is replaced (a later dependency's file wins); a symlink at the path is
    replaced by the file, never written through. A path under a symlinked or non-directory
    parent (the checkout may commit ``lib -> /etc``) is skipped with a warning: nothing is ever
    written outside ``workspace``.
    """
    root = workspace.resolve()
    warnings: list[str] = []
    for rel, stored in files:
        parts = rel.split("/")
        if not rel or rel.startswith("/") or ".." in parts or "" in parts:
            warnings.append(f"artifact '{rel}' not restored: not a path inside the workspace")
            continue
        parent = root
        blocked = False
        for part in parts[:-1]:
            parent = parent / part
            if parent.is_symlink() or (parent.exists() and not parent.is_dir()):
                blocked = True
                break
            if not parent.exists():
                parent.mkdir()
        if blocked:
            warnings.append(
                f"artifact '{rel}' not restored: '{parent.relative_to(root).as_posix()}' "
                "is a symlink or a file in the workspace"
            )
            continue
        target = parent / parts[-1]
        try:
            if target.is_symlink() or target.is_file():
                target.unlink()
            elif target.exists():
                warnings.append(f"artifact '{rel}' not restored: a directory is in its place")
                continue
            _copy_exclusive(stored, target)
        except OSError as exc:
            warnings.append(f"artifact '{rel}' not restored: {exc.strerror or exc}")
    return warnings


def parse_dotenv(path: Path) -> tuple[dict[str, str], str | None]:
    """The variables of a ``reports: dotenv`` file, or ({}, why) when GitLab would refuse it.

    GitLab's rules: at most ``MAX_DOTENV_BYTES`` bytes and ``MAX_DOTENV_VARIABLES`` variables,
    UTF-8, one ``KEY=VALUE`` per line, keys of ASCII letters, digits and ``_``; the value is
    taken as written (stripped; quotes kept, nothing expanded, no multi-line values). Empty lines
    and ``#`` comments are skipped. One bad line refuses the whole file, as GitLab does.
    """
    try:
        if not path.is_file() or path.is_symlink():
            return {}, f"{path.name} is not a regular file"
        if path.stat().st_size > MAX_DOTENV_BYTES:
            return {}, f"it is larger than {_human(MAX_DOTENV_BYTES)}"
        text = path.read_bytes()[: MAX_DOTENV_BYTES + 1].decode("utf-8")
    except UnicodeDecodeError:
        return {}, "it is not UTF-8 text"
    except OSError as exc:
        return {}, str(exc.strerror or exc)
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _DOTENV_KEY.fullmatch(key):
            return {}, f"line {number} is not KEY=VALUE with a key of letters, digits and '_'"
        if "\0" in value:
            return {}, f"line {number} holds a NUL character"
        values[key] = value.strip()
        if len(values) > MAX_DOTENV_VARIABLES:
            return {}, f"it sets more than {MAX_DOTENV_VARIABLES} variables"
    return values, None


def safe_join(root: Path, relpath: str) -> Path:
    """The existing file ``relpath`` under ``root``, for serving a download.

    Raises ``NotFound`` for absolute paths, ``..`` segments, paths that resolve outside ``root``
    (through symlinks) and paths that are not there, so nothing outside leaks.
    """
    parts = relpath.replace("\\", "/").split("/")
    if not relpath or "\0" in relpath or relpath.startswith("/") or ".." in parts:
        raise NotFound(f"artifact '{relpath}' not found")
    base = root.resolve()
    full = (base / relpath).resolve()
    if not _inside(base, full) or not full.is_file():
        raise NotFound(f"artifact '{relpath}' not found")
    return full


# --- matching -------------------------------------------------------------------------------


def _match_one(root: Path, pattern: str, warnings: list[str]) -> set[str]:
    text = pattern.strip()
    if text.startswith("/") or ".." in text.split("/"):
        raise ArtifactPatternError(f"artifact pattern '{pattern}' escapes the workspace")
    dir_only = text.endswith("/")
    segments = [s for s in text.split("/") if s not in ("", ".")]
    if not segments:  # ".", "./": the whole workspace; "": nothing
        return _files_under(root, "", warnings) if text else set()
    literal = 0
    while literal < len(segments) and not _is_glob(segments[literal]):
        literal += 1
    if literal == len(segments):
        if not _reachable_dir(root, segments[:-1], warnings):
            return set()
        return _match_literal(root, "/".join(segments), dir_only, warnings)
    base = segments[:literal]
    if not _reachable_dir(root, base, warnings) or not (root.joinpath(*base)).is_dir():
        return set()
    regex = _compile(segments)
    entries = _walk(root, "/".join(base), warnings)
    dirs = {rel for rel, is_dir in entries if is_dir and regex.fullmatch(rel)}
    found: set[str] = set()
    for rel, is_dir in entries:
        if is_dir:
            continue
        if (not dir_only and regex.fullmatch(rel)) or any(a in dirs for a in _ancestors(rel)):
            found.add(rel)
    return found


def _match_literal(root: Path, rel: str, dir_only: bool, warnings: list[str]) -> set[str]:
    path = root / rel
    if path.is_symlink():
        return set() if dir_only else _symlinked_file(root, rel, warnings)
    if _is_real_dir(path):
        return _files_under(root, rel, warnings)
    if not dir_only and _is_regular(path):
        return {rel}
    return set()


def _files_under(root: Path, rel: str, warnings: list[str]) -> set[str]:
    return {r for r, is_dir in _walk(root, rel, warnings) if not is_dir}


def _ancestors(rel: str) -> list[str]:
    """``a/b/c`` -> ``["a", "a/b"]``."""
    parts = rel.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _walk(root: Path, rel: str, warnings: list[str]) -> list[tuple[str, bool]]:
    """(path, is_dir) of everything under ``root/rel``; symlinked dirs are not descended."""
    out: list[tuple[str, bool]] = []
    start = root / rel if rel else root
    for dirpath, dirnames, filenames in os.walk(start, followlinks=False):
        prefix = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if prefix == "." else prefix + "/"
        for name in dirnames:
            if (Path(dirpath) / name).is_symlink():
                _warn_if_escaping(root, prefix + name, warnings)
            else:
                out.append((prefix + name, True))
        for name in filenames:
            if (Path(dirpath) / name).is_symlink():
                out.extend((r, False) for r in _symlinked_file(root, prefix + name, warnings))
            elif _is_regular(Path(dirpath) / name):
                out.append((prefix + name, False))
    return out


def _symlinked_file(root: Path, rel: str, warnings: list[str]) -> set[str]:
    """{rel} when the symlink ``rel`` points at a regular file inside the workspace."""
    target = (root / rel).resolve()
    if not _inside(root, target):
        warnings.append(f"artifact '{rel}' is a symlink out of the workspace; skipped")
        return set()
    return {rel} if target.is_file() else set()


def _warn_if_escaping(root: Path, rel: str, warnings: list[str]) -> None:
    if not _inside(root, (root / rel).resolve()):
        warnings.append(f"artifact '{rel}' is a symlink out of the workspace; skipped")


def _reachable_dir(root: Path, segments: list[str], warnings: list[str]) -> bool:
    """False when one of the directories ``segments`` names is a symlink (never descended into)."""
    path = root
    for part in segments:
        path = path / part
        if path.is_symlink():
            _warn_if_escaping(root, path.relative_to(root).as_posix(), warnings)
            return False
    return True


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
    return re.compile(out.replace("[^/]*[^/]*", "[^/]*"))


def _is_glob(segment: str) -> bool:
    return "*" in segment or "?" in segment


def _is_real_dir(path: Path) -> bool:
    return not path.is_symlink() and path.is_dir()


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def _inside(root: Path, path: Path) -> bool:
    return path == root or root in path.parents


def _copy_hashing(source: Path, target: Path, limit: int | None = None) -> tuple[int, str]:
    """Copy in chunks, returning (size, sha256 hex) of what was copied.

    Only the content and the exec bit are kept (``_stored_mode``): the copy belongs to us,
    whoever owned the original in the container. More than ``limit`` bytes raise ``_TooBig``
    (checked while copying: a running container may still grow the file).
    """
    digest = hashlib.sha256()
    size = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with source.open("rb") as src, target.open("wb") as dst:
        if limit is not None and os.fstat(src.fileno()).st_size > limit:
            raise _TooBig
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            dst.write(chunk)
            size += len(chunk)
            if limit is not None and size > limit:
                raise _TooBig
        # fchmod on the open file: the path cannot be swapped for something else in between
        os.fchmod(dst.fileno(), _stored_mode(os.fstat(src.fileno()).st_mode))
    return size, digest.hexdigest()


def _copy_exclusive(stored: Path, target: Path) -> None:
    """Copy ``stored`` to the new file ``target`` (never through a link planted there)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    mode = _stored_mode(stored.stat().st_mode)
    fd = os.open(target, flags, mode)
    with stored.open("rb") as src, os.fdopen(fd, "wb") as dst:
        shutil.copyfileobj(src, dst, _CHUNK)
        os.fchmod(dst.fileno(), mode)


def _human(size: int) -> str:
    """``1 GiB``, ``5 KiB``, ``300 B``."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:g} {unit}"
    return f"{size} B"


def _stored_mode(source_mode: int) -> int:
    """0755 for an executable, else 0644.

    A job runs as root in its container: copying its mode bits would plant setuid or setgid
    executables (or world-writable files) on the host, owned by whoever runs the server.
    """
    return 0o755 if source_mode & 0o111 else 0o644
