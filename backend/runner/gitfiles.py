"""Reading pipeline files as committed: only committed files are ever run.

Blobs are read with ``git cat-file``, plumbing that never applies a textconv or filter driver.
"""

from __future__ import annotations

from pathlib import Path

from backend.errors import NotFound, RepoError
from backend.runner.git import git


def read_committed(git_dir: Path, commit: str, path: str) -> str:
    """The text of ``path`` (relative to the repository root) at ``commit``."""
    done = git("cat-file", "blob", f"{commit}:{path}", git_dir=git_dir, check=False, text=False)
    if done.returncode != 0:
        raise NotFound(f"{path}: no such file in commit {commit[:12]}")
    try:
        return done.stdout.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RepoError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def list_committed(git_dir: Path, commit: str, folder: str) -> list[str]:
    """Paths of the files directly in ``folder`` at ``commit``, sorted."""
    done = git(
        "ls-tree", "--name-only", commit, f"{folder.rstrip('/')}/", git_dir=git_dir, check=False,
        text=False,
    )
    if done.returncode != 0:
        return []
    return sorted(line for line in done.stdout.decode("utf-8", "replace").splitlines() if line)
