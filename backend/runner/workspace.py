"""A run's workspace: which commit to build, a fresh checkout of it, and its removal.

Everything goes through the ``git`` CLI (no libgit binding), run non-interactively:

- ``resolve_source`` turns ``--repo/--branch/--commit`` into a ``Source``: a full commit sha and a
  local git directory that holds it. A local repository is used in place; a URL is kept as a bare
  clone under ``cache_dir`` (fetched again on each use).
- ``checkout`` writes exactly the committed files of that commit into an empty directory, through
  a private index file (``read-tree`` + ``checkout-index``), so the user's repository, its index
  and its hooks are never touched and no ``.git`` lands in the workspace. Submodules are ignored
  (their directories stay empty). ``git archive`` is not used: it drops ``export-ignore`` files.
- bundles that carry a local commit to a remote server are in ``backend.runner.bundles``;
  running git itself is ``backend.runner.git``.
- ``remove_tree`` removes a workspace that containers running as root wrote into.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from backend.errors import CicdError, RepoError
from backend.runner.git import git, last_line, locked, rev, slug

# Checkout must give the committed bytes whatever the user's global config says.
_CHECKOUT_CONFIG = (
    "-c core.autocrlf=false -c core.sparseCheckout=false -c core.hooksPath=/dev/null".split()
)


class WorkspaceCleanupError(CicdError):
    """A workspace directory could not be removed completely."""


@dataclass(frozen=True)
class Source:
    """The commit a run builds, and a local git directory that holds it."""

    repo: str  # absolute local path, or the URL as given
    branch: str | None  # None when HEAD is detached or only a commit was asked for
    commit: str  # full sha
    git_dir: Path  # a local git directory containing ``commit``
    dirty: list[str] = field(default_factory=list)  # uncommitted paths the checkout leaves out


def resolve_source(
    repo: str | None,
    branch: str | None,
    commit: str | None,
    *,
    cwd: Path,
    cache_dir: Path,
) -> Source:
    """Find the commit to build: ``--commit`` if given, else the tip of ``--branch``, else HEAD.

    ``repo`` None means the git repository containing ``cwd``; a local path (working tree or bare
    repository) is used in place; anything else that looks like a URL (``file://``, https, ssh,
    ``user@host:path``) is cloned into ``cache_dir``. When both a branch and a commit are given
    the branch must exist but is not checked to contain the commit. ``dirty`` lists the
    uncommitted paths of a local working tree when the commit built is its HEAD.
    """
    if repo is None:
        proc = git("rev-parse", "--show-toplevel", cwd=cwd, check=False)
        if proc.returncode != 0:
            raise RepoError(f"not inside a git repository: {cwd} (use --repo PATH|URL)")
        return _resolve_local(Path(proc.stdout.strip()), branch, commit)
    if _is_url(repo, cwd):
        git_dir = _fetch_mirror(repo, cache_dir, want_head=branch is None and commit is None)
        label = redact_url(repo)
        if commit is not None and rev(git_dir, commit) is None and _is_full_sha(commit):
            # A commit on no branch (a merge request's head, say) can often be fetched by sha.
            git("fetch", "-q", "origin", commit, git_dir=git_dir, check=False)
        sha, name = _pick(git_dir, label, branch, commit)
        return Source(repo=repo, branch=name, commit=sha, git_dir=git_dir)
    path = Path(repo).expanduser()
    return _resolve_local(path if path.is_absolute() else cwd / path, branch, commit, strict=True)


def checkout(source: Source, dest: Path) -> None:
    """Write exactly the committed files of ``source.commit`` into ``dest`` (new or empty).

    Uses a throwaway index file, so the source repository is only read; no ``.git`` is written
    into ``dest`` and submodules are left as empty directories.
    """
    if dest.exists() and any(dest.iterdir()):
        raise RepoError(f"workspace {dest} is not empty")
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cicd-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        base = [*_CHECKOUT_CONFIG, f"--work-tree={dest}"]
        for args in (["read-tree", source.commit], ["checkout-index", "--all", "--force"]):
            proc = git(*base, *args, git_dir=source.git_dir, env=env, check=False)
            if proc.returncode != 0:
                raise RepoError(
                    f"cannot check out {source.commit[:12]} of {redact_url(source.repo)} into "
                    f"{dest}: {last_line(proc.stderr)}"
                )


def remove_tree(path: Path, *, fallback: Callable[[Path], None] | None = None) -> None:
    """Remove ``path`` and everything under it; a missing path is fine.

    Read-only or unreadable directories are made writable and the removal retried. Symlinks are
    removed, never followed (a symlink ``path`` itself is just unlinked). Files that only root may
    delete (a root container's directories) need ``fallback``, e.g. a ``rm -rf`` in a container;
    without one, or if it fails, ``WorkspaceCleanupError`` names what was left.
    """
    if path.is_symlink():
        path.unlink()
        return
    if not path.exists():
        return
    with contextlib.suppress(OSError):
        shutil.rmtree(path)
    if not path.exists():
        return
    _make_writable(path)
    errors: list[str] = []
    _rmtree_collecting(path, errors)
    if path.exists() and fallback is not None:
        fallback(path)
    if path.exists():
        first = errors[0] if errors else str(path)
        raise WorkspaceCleanupError(f"cannot remove workspace {path}: {first}")


def request_key(source: Source, pipeline_name: str, file_content: str | bytes) -> str:
    """sha256 hex of what makes two run requests duplicates: repo, commit, pipeline, file."""
    content = file_content if isinstance(file_content, bytes) else file_content.encode()
    payload = json.dumps(
        [source.repo, source.commit, pipeline_name, hashlib.sha256(content).hexdigest()]
    )
    return hashlib.sha256(payload.encode()).hexdigest()


# --- resolving -----------------------------------------------------------------------------


def _resolve_local(
    path: Path, branch: str | None, commit: str | None, *, strict: bool = False
) -> Source:
    if not path.is_dir():
        raise RepoError(f"{path} is not a git repository")
    path = path.resolve()
    # strict: the path itself must be the repository, not some directory inside one.
    env = {"GIT_CEILING_DIRECTORIES": str(path.parent)} if strict else None
    proc = git(
        "rev-parse", "--absolute-git-dir", "--is-bare-repository", cwd=path, env=env, check=False
    )
    if proc.returncode != 0:
        raise RepoError(f"{path} is not a git repository")
    git_dir_s, bare = proc.stdout.split("\n")[:2]
    git_dir = Path(git_dir_s)
    top = (
        git_dir
        if bare == "true"
        else Path(git("rev-parse", "--show-toplevel", cwd=path).stdout.strip())
    )
    sha, name = _pick(git_dir, str(top), branch, commit)
    dirty: list[str] = []
    if bare != "true" and sha == rev(git_dir, "HEAD"):
        dirty = _dirty_paths(top)
    return Source(repo=str(top), branch=name, commit=sha, git_dir=git_dir, dirty=dirty)


def _pick(
    git_dir: Path, label: str, branch: str | None, commit: str | None
) -> tuple[str, str | None]:
    """(sha, branch name) for the request; raise a one-line RepoError when it names nothing."""
    tip = None
    if branch is not None:
        refs = (f"refs/heads/{branch}", f"refs/tags/{branch}", f"refs/remotes/origin/{branch}")
        tip = next(
            (s for r in refs if not branch.startswith("-") and (s := rev(git_dir, r))), None
        )
        if tip is None:
            raise RepoError(f"branch '{branch}' not found in {label}")
    if commit is not None:
        proc = None
        if commit and not commit.startswith("-"):
            proc = git(
                "rev-parse", "--verify", f"{commit}^{{commit}}", git_dir=git_dir, check=False
            )
        if proc is None or proc.returncode != 0:
            why = "is ambiguous" if proc and "ambiguous" in proc.stderr else "not found"
            raise RepoError(f"commit '{commit}' {why} in {label}")
        return proc.stdout.strip(), branch
    if tip is not None:
        return tip, branch
    head = rev(git_dir, "HEAD")
    if head is None:
        raise RepoError(f"{label} has no commits")
    name = git(
        "symbolic-ref", "-q", "--short", "HEAD", git_dir=git_dir, check=False
    ).stdout.strip()
    return head, name or None


def _dirty_paths(top: Path) -> list[str]:
    out = git("--no-optional-locks", "status", "--porcelain=v1", "-z", cwd=top).stdout
    paths: list[str] = []
    entries = iter(out.split("\0"))
    for entry in entries:
        if not entry:
            continue
        paths.append(entry[3:])
        if entry[0] in "RC":
            next(entries, None)  # the rename's source path
    return paths


# --- remote repositories --------------------------------------------------------------------


def _fetch_mirror(url: str, cache_dir: Path, *, want_head: bool) -> Path:
    """A bare clone of ``url`` under ``cache_dir``, cloned or brought up to date."""
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    git_dir = cache_dir / f"{slug(url)}-{key}.git"
    label = redact_url(url)
    with locked(git_dir):
        if git_dir.exists() and git("rev-parse", git_dir=git_dir, check=False).returncode != 0:
            remove_tree(git_dir)  # a clone interrupted before we renamed it cannot be here; be safe
        if not git_dir.exists():
            tmp = Path(tempfile.mkdtemp(prefix=".clone-", dir=cache_dir))
            proc = git("clone", "-q", "--bare", "--", url, str(tmp), check=False)
            if proc.returncode != 0:
                remove_tree(tmp)
                err = last_line(proc.stderr).replace(url, label)
                raise RepoError(f"cannot clone {label}: {err}")
            for spec in ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"):
                git("config", "--add", "remote.origin.fetch", spec, git_dir=tmp)
            tmp.rename(git_dir)
            return git_dir
        proc = git("fetch", "-q", "--prune", "origin", git_dir=git_dir, check=False)
        if proc.returncode != 0:
            err = last_line(proc.stderr).replace(url, label)
            raise RepoError(f"cannot fetch {label}: {err}")
        if want_head:  # the remote's default branch may have changed since the clone
            out = git(
                "ls-remote", "--symref", "origin", "HEAD", git_dir=git_dir, check=False
            ).stdout
            m = re.match(r"ref: (refs/heads/\S+)\tHEAD", out)
            if m:
                git("symbolic-ref", "HEAD", m.group(1), git_dir=git_dir, check=False)
    return git_dir


def _is_url(repo: str, cwd: Path) -> bool:
    if "://" in repo:
        return True
    # git's scp-like syntax, ``[user@]host:path``: a colon before any slash.
    colon, slash = repo.find(":"), repo.find("/")
    return colon > 0 and (slash < 0 or colon < slash) and not (cwd / repo).exists()


def _is_full_sha(revision: str) -> bool:
    return re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", revision) is not None


def redact_url(url: str) -> str:
    """The URL without a password or token (``https://user:token@host`` -> ``https://user:***@host``)."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://[^/@:]*):[^/@]*@", r"\1:***@", url, flags=re.I)


# --- removal --------------------------------------------------------------------------------


def _rmtree_collecting(path: Path, errors: list[str]) -> None:
    """``shutil.rmtree`` that carries on past errors, noting each as ``path: reason``."""

    def note(_func: object, failed: str, exc: BaseException) -> None:
        errors.append(f"{failed}: {getattr(exc, 'strerror', None) or exc}")

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=note)
    else:
        shutil.rmtree(path, onerror=lambda f, p, info: note(f, p, info[1]))


def _make_writable(root: Path) -> None:
    """Give the owner rwx on every directory under ``root`` we can; never follow a symlink."""
    with contextlib.suppress(OSError):
        os.chmod(root, stat.S_IRWXU | os.stat(root).st_mode)
    for dirpath, dirnames, _files in os.walk(root, followlinks=False):
        for name in dirnames:
            p = os.path.join(dirpath, name)
            with contextlib.suppress(OSError):
                st = os.lstat(p)
                if stat.S_ISDIR(st.st_mode):
                    os.chmod(p, st.st_mode | stat.S_IRWXU)
