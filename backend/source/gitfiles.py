"""Reading pipeline files as committed: only committed files are ever run.

``CommitSource`` gives a GitLab file's includes from the same commit; ``commit_facts`` what its
predefined variables say about the commit (tag, message, default branch).

Blobs are read with ``git cat-file``, plumbing that never applies a textconv or filter driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from backend.errors import NotFound, RepoError
from backend.source.git import git


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
        "ls-tree",
        "--name-only",
        commit,
        f"{folder.rstrip('/')}/",
        git_dir=git_dir,
        check=False,
        text=False,
    )
    if done.returncode != 0:
        return []
    return sorted(line for line in done.stdout.decode("utf-8", "replace").splitlines() if line)


def list_all_committed(git_dir: Path, commit: str) -> list[str]:
    """Every file path at ``commit``, relative to the repository root, sorted."""
    done = git(
        "ls-tree", "-r", "-z", "--name-only", commit, git_dir=git_dir, check=False, text=False
    )
    if done.returncode != 0:
        return []
    return sorted(p for p in done.stdout.decode("utf-8", "replace").split("\0") if p)


class CommitSource:
    """The files of one commit, for a GitLab file's ``include:`` and ``rules:exists``.

    A run reads its includes from the commit it builds, never from the work tree.
    """

    def __init__(self, git_dir: Path, commit: str) -> None:
        self.git_dir = git_dir
        self.commit = commit
        self._paths: list[str] | None = None

    def read(self, path: str) -> str:
        """The committed text of ``path``; ``FileNotFoundError`` when the commit has none."""
        try:
            return read_committed(self.git_dir, self.commit, path)
        except NotFound:
            raise FileNotFoundError(path) from None

    def paths(self) -> list[str]:
        """Every committed path (listed once, on first use)."""
        if self._paths is None:
            self._paths = list_all_committed(self.git_dir, self.commit)
        return self._paths


@dataclass(frozen=True)
class CommitFacts:
    """What GitLab's predefined variables say about a commit besides its sha and branch."""

    tag: str | None  # a tag pointing at it (the first by name), None without one
    message: str
    default_branch: str  # origin/HEAD's branch, ``main`` when the repository does not say


def commit_facts(git_dir: Path, commit: str) -> CommitFacts:
    """The tag, message and default branch of ``commit`` in ``git_dir`` (plumbing only)."""
    tags = git("tag", "--points-at", commit, git_dir=git_dir, check=False)
    tag = min(tags.stdout.split(), default=None) if tags.returncode == 0 else None
    raw = git("cat-file", "commit", commit, git_dir=git_dir, check=False, text=False)
    body = raw.stdout.decode("utf-8", "replace") if raw.returncode == 0 else ""
    message = body.partition("\n\n")[2]  # the commit object's headers end at the first blank line
    head = git("symbolic-ref", "--quiet", "refs/remotes/origin/HEAD", git_dir=git_dir, check=False)
    default = (
        head.stdout.strip().removeprefix("refs/remotes/origin/") if head.returncode == 0 else ""
    )
    return CommitFacts(tag=tag, message=message, default_branch=default or "main")
