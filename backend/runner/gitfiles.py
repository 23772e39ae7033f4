"""Reading pipeline files as committed: only committed files are ever run."""

from __future__ import annotations

import subprocess
from pathlib import Path

from backend.errors import NotFound, RepoError


def _git(git_dir: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            ["git", "-C", str(git_dir), *args], capture_output=True, check=False
        )
    except OSError as exc:
        raise RepoError(f"cannot run git: {exc}") from exc


def read_committed(git_dir: Path, commit: str, path: str) -> str:
    """The text of ``path`` (relative to the repository root) at ``commit``."""
    done = _git(git_dir, "show", f"{commit}:{path}")
    if done.returncode != 0:
        raise NotFound(f"{path}: no such file in commit {commit[:12]}")
    try:
        return done.stdout.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RepoError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def list_committed(git_dir: Path, commit: str, folder: str) -> list[str]:
    """Paths of the files directly in ``folder`` at ``commit``, sorted."""
    done = _git(git_dir, "ls-tree", "--name-only", f"{commit}", f"{folder.rstrip('/')}/")
    if done.returncode != 0:
        return []
    return sorted(line for line in done.stdout.decode("utf-8", "replace").splitlines() if line)
