"""The cache folder (``CICD_HOME/cache``): one tar archive per key, replaced atomically.

Layout: ``<root>/<safe name of the key>.tar`` holds a cache (``backend.paths.safe_name``: a key
is user input and never becomes a path as given), ``<same>.used`` is touched each time it is
restored (its mtime is "last used"). The archive's PAX global header records the key and
where the cache came from (pipeline, run, job, saved at), so ``list`` needs no other file and
a cached file may have any name.

Concurrency: a save writes a temporary archive in the same folder (``.tmp-*``) and moves it
over the old one with ``os.replace``, atomic on one file system: a key always names one
complete archive, the last one written. A restore opens the archive once and reads from that
open file, so a save that replaces it meanwhile does not change what it reads.

What is kept: regular files (content and the exec bit: mode 0755 or 0644, owned by us) and
symlinks as symlinks, whatever their target (``readlink``; never followed: a virtualenv's
``bin/python -> /usr/bin/python3`` works again in the next job's container, and no host file
is read through it). Devices and FIFOs are left out. Every path is opened one directory at a
time with ``O_NOFOLLOW`` (on save and on restore), and a restored entry replaces what is at
its path (never written through a link), so a symlink in the workspace, or in the archive,
even planted meanwhile, never makes us read or write outside it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from backend.paths import safe_child

ARCHIVE_SUFFIX = ".tar"
USED_SUFFIX = ".used"
TEMP_PREFIX = ".tmp-"
MAX_CACHE_BYTES = 10 * 1024**3  # one cache's files, in all: a job cannot fill the disk unbounded
_META = "cicd."  # PAX header names of the metadata
_CHUNK = 1024 * 1024
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


class CacheTooBig(Exception):
    """The cached files would pass ``MAX_CACHE_BYTES``."""


@dataclass
class SaveResult:
    """What ``CacheStore.save`` archived."""

    files: int = 0
    bytes: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass
class RestoreResult:
    """What ``CacheStore.restore`` extracted."""

    files: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CacheEntry:
    """One cache in the folder, for ``cicd cache list``."""

    key: str
    size: int  # bytes of the archive
    saved_at: datetime
    last_used: datetime | None
    pipeline: str | None
    run: str | None
    job: str | None


class CacheStore:
    """The caches under ``root`` (``CICD_HOME/cache``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def archive(self, key: str) -> Path:
        """The archive of ``key`` (it may not exist)."""
        return safe_child(self._ensure_root(), key, ARCHIVE_SUFFIX)

    def save(
        self,
        key: str,
        workspace: Path,
        paths: list[str],
        meta: dict[str, str],
        *,
        max_bytes: int = MAX_CACHE_BYTES,
    ) -> SaveResult:
        """Archive ``paths`` (relative POSIX paths of ``workspace``) as the cache ``key``.

        ``meta`` (pipeline, run, job) is recorded with it. Raises ``CacheTooBig`` (nothing
        is replaced) when the files pass ``max_bytes``.
        """
        target = self.archive(key)
        headers = {f"{_META}key": key, f"{_META}saved_at": _now().isoformat()}
        headers.update({f"{_META}{name}": value for name, value in meta.items()})
        fd, temp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=ARCHIVE_SUFFIX, dir=self.root)
        temp = Path(temp_name)
        result = SaveResult()
        try:
            with (
                os.fdopen(fd, "wb") as raw,
                tarfile.open(
                    fileobj=raw, mode="w", format=tarfile.PAX_FORMAT, pax_headers=headers
                ) as tar,
            ):
                root_fd = os.open(workspace, _DIR_FLAGS)
                try:
                    for rel in sorted(set(paths)):
                        result.bytes += _add(tar, root_fd, rel, result, max_bytes - result.bytes)
                except CacheTooBig:
                    raise CacheTooBig(f"its files pass {max_bytes:,} bytes") from None
                finally:
                    os.close(root_fd)
                os.fchmod(raw.fileno(), 0o600)
            os.replace(temp, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return result

    def restore(self, key: str, workspace: Path) -> RestoreResult | None:
        """Extract the cache ``key`` into ``workspace``; None when there is no such cache.

        A file already there is replaced (never written through a symlink); a path under a
        symlink, a file or a directory where a file goes is skipped with a warning.
        """
        target = self.archive(key)
        try:
            handle = target.open("rb")  # from here on, this version, whatever saves do
        except FileNotFoundError:
            return None
        result = RestoreResult()
        with handle, tarfile.open(fileobj=handle, mode="r:") as tar:
            root_fd = os.open(workspace, _DIR_FLAGS)
            try:
                for member in tar:
                    _extract(tar, member, root_fd, result)
            finally:
                os.close(root_fd)
        self._touch(key)
        return result

    def entries(self) -> list[CacheEntry]:
        """Every cache of the folder, by key."""
        if not self.root.is_dir():
            return []
        found: list[CacheEntry] = []
        for path in self.root.iterdir():
            if path.name.startswith(TEMP_PREFIX) or path.suffix != ARCHIVE_SUFFIX:
                continue
            entry = _entry(path)
            if entry is not None:
                found.append(entry)
        return sorted(found, key=lambda e: e.key)

    def clear(self, key: str | None = None) -> int:
        """Remove the cache ``key`` (None: every cache and leftover temporary file).

        Returns how many caches went. A restore that has the archive open finishes reading it.
        """
        if not self.root.is_dir():
            return 0
        if key is not None:
            archive = self.archive(key)
            existed = archive.is_file()
            archive.unlink(missing_ok=True)
            safe_child(self.root, key, USED_SUFFIX).unlink(missing_ok=True)
            return int(existed)
        removed = 0
        for path in self.root.iterdir():
            if path.is_file() or path.is_symlink():
                removed += path.suffix == ARCHIVE_SUFFIX and not path.name.startswith(TEMP_PREFIX)
                path.unlink(missing_ok=True)
        return removed

    def _touch(self, key: str) -> None:
        used = safe_child(self.root, key, USED_SUFFIX)
        with contextlib.suppress(OSError):
            fd = os.open(used, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                os.utime(fd)
            finally:
                os.close(fd)

    def _ensure_root(self) -> Path:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self.root


def _now() -> datetime:
    return datetime.now(UTC)


def _entry(path: Path) -> CacheEntry | None:
    """The metadata of one archive; None when it is not one of ours (or unreadable)."""
    try:
        with tarfile.open(path, mode="r:") as tar:
            headers = dict(tar.pax_headers)
        size = path.stat().st_size
    except (OSError, tarfile.TarError):
        return None
    key = headers.get(f"{_META}key")
    if key is None:
        return None
    try:
        saved = datetime.fromisoformat(headers.get(f"{_META}saved_at", ""))
    except ValueError:
        saved = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    used_path = path.with_suffix(USED_SUFFIX)
    last_used = None
    with contextlib.suppress(OSError):
        last_used = datetime.fromtimestamp(used_path.stat().st_mtime, UTC)
    return CacheEntry(
        key=key,
        size=size,
        saved_at=saved,
        last_used=last_used,
        pipeline=headers.get(f"{_META}pipeline"),
        run=headers.get(f"{_META}run"),
        job=headers.get(f"{_META}job"),
    )


# --- saving ----------------------------------------------------------------------------------


def _split(rel: str) -> list[str] | None:
    """The segments of a relative path inside the workspace; None when it is not one."""
    parts = rel.split("/")
    if not rel or rel.startswith("/") or "\0" in rel or any(p in ("", ".", "..") for p in parts):
        return None
    return parts


@contextlib.contextmanager
def _parent_fd(root_fd: int, parts: list[str], create: bool) -> Iterator[int]:
    """An fd of the directory holding ``parts[-1]``, each step opened without following links.

    Raises ``OSError`` (ELOOP, ENOTDIR) when a step is a symlink or not a directory.
    """
    fd = os.dup(root_fd)
    try:
        for part in parts[:-1]:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
            step = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = step
        yield fd
    finally:
        os.close(fd)


def _add(tar: tarfile.TarFile, root_fd: int, rel: str, result: SaveResult, room: int) -> int:
    """Add workspace file ``rel`` to ``tar``; return the bytes added (0 when skipped)."""
    parts = _split(rel)
    if parts is None:
        result.warnings.append(f"cache path '{rel}' is not inside the workspace; skipped")
        return 0
    try:
        with _parent_fd(root_fd, parts, create=False) as dir_fd:
            info = os.lstat(parts[-1], dir_fd=dir_fd)
            if stat.S_ISLNK(info.st_mode):
                target = os.readlink(parts[-1], dir_fd=dir_fd)  # kept as is, never followed
                member = tarfile.TarInfo(rel)
                member.type = tarfile.SYMTYPE
                member.linkname = target
                member.mode = 0o777
                member.mtime = int(info.st_mtime)
                tar.addfile(member)
                result.files += 1
                return 0
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError as exc:
        result.warnings.append(f"cache path '{rel}' not saved: {_reason(exc)}")
        return 0
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            return 0
        if info.st_size > room:
            raise CacheTooBig("the cached files pass the limit")
        member = tarfile.TarInfo(rel)
        member.size = info.st_size
        member.mode = 0o755 if info.st_mode & 0o111 else 0o644
        member.mtime = int(info.st_mtime)
        # exactly st_size bytes are read: a file that shrinks meanwhile fails the whole save
        tar.addfile(member, handle)
    result.files += 1
    return info.st_size


# --- restoring -------------------------------------------------------------------------------


def _extract(
    tar: tarfile.TarFile, member: tarfile.TarInfo, root_fd: int, out: RestoreResult
) -> None:
    """Write one archive member under the workspace, or add a warning why not."""
    rel = member.name
    parts = _split(rel)
    if parts is None or not (member.isreg() or member.issym()):
        out.warnings.append(f"cache entry '{rel}' not restored: not a file inside the workspace")
        return
    if member.issym() and (not member.linkname or "\0" in member.linkname):
        out.warnings.append(f"cache entry '{rel}' not restored: an empty symlink")
        return
    try:
        with _parent_fd(root_fd, parts, create=True) as dir_fd:
            name = parts[-1]
            with contextlib.suppress(FileNotFoundError):
                present = os.lstat(name, dir_fd=dir_fd)
                if stat.S_ISDIR(present.st_mode):
                    out.warnings.append(
                        f"cache entry '{rel}' not restored: a directory is in its place"
                    )
                    return
                os.unlink(name, dir_fd=dir_fd)  # a file or a link: replaced, never written through
            if member.issym():
                os.symlink(member.linkname, name, dir_fd=dir_fd)
            else:
                mode = 0o755 if member.mode & 0o111 else 0o644
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                fd = os.open(name, flags, mode, dir_fd=dir_fd)
                source = tar.extractfile(member)
                with os.fdopen(fd, "wb") as dst:
                    if source is not None:
                        while chunk := source.read(_CHUNK):
                            dst.write(chunk)
                    os.fchmod(dst.fileno(), mode)
                with contextlib.suppress(OSError):
                    os.utime(name, (member.mtime, member.mtime), dir_fd=dir_fd)
    except OSError as exc:
        out.warnings.append(f"cache entry '{rel}' not restored: {_reason(exc)}")
        return
    out.files += 1


def _reason(exc: OSError) -> str:
    """Why a path could not be opened, in words."""
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # O_NOFOLLOW met a link, or a file mid-path
        return "a symlink or a file is in the way"
    return exc.strerror or str(exc)
