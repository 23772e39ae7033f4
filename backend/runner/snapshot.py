"""A private copy of a clean checkout for one job: ``clone_tree``.

A job of an isolated run gets its own directory holding the commit's files; it may rewrite
any of them in place (``>``, ``truncate``, ``dd``) as root, so nothing it can write may be
shared with the checkout or another job. Hard links would share the inodes (a job's ``>`` on a
hard-linked file would change the base and every sibling), so each job gets real files:
``cp -a --reflink=auto``, which is a copy-on-write clone (near free) on btrfs, XFS (reflink)
and the like, and a plain copy (``copy_file_range``) elsewhere. Modes, times and symlinks are
kept as they are; a symlink is copied as a symlink, never followed.

Measured with ``bench/jobspace.py`` on ext4 (docs/pipeline-format.md, ``pipeline.workspace``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from backend.errors import CicdError

_CP = shutil.which("cp")


class SnapshotError(CicdError):
    """A job's copy of the checkout could not be made."""


def clone_tree(base: Path, dest: Path) -> None:
    """Make ``dest`` (which must not exist) a private copy of directory ``base``.

    Raises ``SnapshotError`` with one line (the copy tool's last complaint) on failure; a
    partly written ``dest`` is left for the caller to remove.
    """
    if dest.exists() or dest.is_symlink():
        raise SnapshotError(f"cannot prepare the job's workspace: {dest.name} already exists")
    if _CP is None:  # no coreutils: Python's copy (slower, same result)
        try:
            shutil.copytree(base, dest, symlinks=True)
        except (OSError, shutil.Error) as exc:
            raise SnapshotError(f"cannot prepare the job's workspace: {exc}") from None
        return
    # "base/." copies the contents into the new dest; -a keeps modes, times and symlinks
    proc = subprocess.run(
        [_CP, "-a", "--reflink=auto", "--no-target-directory", f"{base}/.", str(dest)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        lines = [s for s in proc.stderr.replace(str(base), "checkout").splitlines() if s.strip()]
        why = lines[-1] if lines else f"cp exited with {proc.returncode}"
        raise SnapshotError(f"cannot prepare the job's workspace: {why}")


# --- overlay volumes: the engine mounts the checkout read-only under a job's own upper layer ---

OVERLAY_PREFIX = "cicd-ws-"
_OVERLAY_UNSAFE = set(",:= \t\n\\\"'")  # would break the mount's o= option string
_WHITEOUT = 0  # overlayfs marks a deleted lower entry by a 0/0 character device in the upper


def overlay_supported(paths: list[Path]) -> str | None:
    """None when an overlay volume of these paths can work here, else why not.

    Needs Linux 5.11+ (``userxattr``: overlay metadata in ``user.*`` attributes, readable
    without privileges) and paths the mount option string can carry.
    """
    import os
    import sys

    if not sys.platform.startswith("linux"):
        return "not Linux"
    release = os.uname().release.split("-")[0].split(".")
    try:
        major, minor = int(release[0]), int(release[1])
    except (IndexError, ValueError):
        return f"unknown kernel {os.uname().release}"
    if (major, minor) < (5, 11):
        return f"Linux {major}.{minor} has no overlay userxattr (5.11+)"
    for path in paths:
        if _OVERLAY_UNSAFE & set(str(path)):
            return f"the path {path} holds a character an overlay option cannot carry"
    return None


def create_overlay_volume(
    client: object, name: str, lower: Path, upper: Path, work: Path, labels: dict[str, str]
) -> None:
    """A local Docker volume that mounts ``lower`` (read-only) under ``upper`` as an overlay.

    The engine (root) mounts it when a container uses it; nothing is mounted by this process.
    """
    options = f"lowerdir={lower},upperdir={upper},workdir={work},userxattr"
    client.api.create_volume(  # type: ignore[attr-defined]
        name=name,
        driver="local",
        driver_opts={"type": "overlay", "device": "overlay", "o": options},
        labels=labels,
    )


def remove_volume(client: object, name: str) -> None:
    """Remove volume ``name``; one that is already gone is fine."""
    import docker.errors

    try:
        client.api.remove_volume(name, force=True)  # type: ignore[attr-defined]
    except docker.errors.NotFound:
        pass


def remove_labelled_volumes(client: object, label: str, value: str) -> int:
    """Remove every volume labelled ``label=value``; return how many."""
    found = client.api.volumes(filters={"label": f"{label}={value}"})  # type: ignore[attr-defined]
    names = [v["Name"] for v in (found or {}).get("Volumes") or []]
    for name in names:
        remove_volume(client, name)
    return len(names)


def merge_lower(lower: Path, upper: Path) -> None:
    """Turn a used overlay's ``upper`` into the merged tree the job saw, on the host.

    Entries of ``lower`` that ``upper`` lacks are hard-linked in (read only: no container
    runs on it any more, and only cicd's own collectors read it before it is removed);
    whiteouts (a deleted file) are removed; an opaque directory (deleted, then made again)
    hides ``lower``'s entries; a directory in both is merged in turn.
    """
    import os
    import stat

    try:
        entries = list(os.scandir(lower))
    except OSError:
        return
    for entry in entries:
        target = upper / entry.name
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            try:
                if entry.is_dir(follow_symlinks=False):
                    shutil.copytree(entry.path, target, symlinks=True, copy_function=os.link)
                elif entry.is_symlink():
                    os.symlink(os.readlink(entry.path), target)
                else:
                    os.link(entry.path, target, follow_symlinks=False)
            except OSError:
                pass  # best effort: a collector then misses that unchanged file
            continue
        except OSError:
            continue
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == _WHITEOUT:
            try:
                os.unlink(target)
            except OSError:
                pass
            continue
        if stat.S_ISDIR(st.st_mode) and entry.is_dir(follow_symlinks=False) and not _opaque(target):
            merge_lower(Path(entry.path), target)


def _opaque(directory: Path) -> bool:
    import os

    for attribute in ("user.overlay.opaque", "trusted.overlay.opaque"):
        try:
            if os.getxattr(directory, attribute, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False
