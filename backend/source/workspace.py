"""A run's workspace: which commit to build, a fresh checkout of it, and its removal.

Everything goes through the ``git`` CLI (no libgit binding), run non-interactively:

- ``resolve_source`` turns ``--repo/--branch/--commit`` into a ``Source``: a full commit sha and a
  local git directory that holds it. A local repository is used in place (only where local paths
  are allowed: the CLI and the local daemon, never a team server); a URL is kept as a bare clone
  under ``cache_dir`` (fetched again on each use). Credentials in a URL are never written down:
  the clone records the URL without them and git gets them for each fetch from the environment
  of that one git process (a credential helper scoped to the URL's host).
- ``checkout`` writes the committed files of that commit into an empty directory, through a
  scratch repository that borrows the objects and a private index file (``read-tree`` +
  ``checkout-index``): the source repository, its index, hooks and configuration are never used,
  so no filter or other command a repository configures can run, and no ``.git`` lands in the
  workspace. Submodules are ignored (their directories stay empty). ``git archive`` is not used:
  it drops ``export-ignore`` files.
- bundles that carry a local commit to a remote server are in ``backend.source.bundles``;
  running git itself is ``backend.source.git``; URLs and their credentials are
  ``backend.source.urls``.
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
from backend.source.git import git, last_line, locked, rev, slug
from backend.source.urls import Auth, is_url, redact_url, split_credentials

# Checkout must give the committed bytes whatever any configuration says.
_CHECKOUT_CONFIG = "-c core.autocrlf=false -c core.sparseCheckout=false".split()


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
    local_paths: bool = True,
    dirty: bool = False,
) -> Source:
    """Find the commit to build: ``--commit`` if given, else the tip of ``--branch``, else HEAD.

    ``repo`` None means the git repository containing ``cwd``; a local path (working tree or bare
    repository) is used in place; anything else that looks like a URL (``file://``, https, ssh,
    ``user@host:path``) is cloned into ``cache_dir``. With ``local_paths`` False (a server), only
    URLs are taken. When both a branch and a commit are given the branch must exist but is not
    checked to contain the commit. With ``dirty`` (the CLI, on the user's own working tree)
    ``Source.dirty`` lists the uncommitted paths of a local working tree when the commit built is
    its HEAD; nothing else ever runs ``git status``.
    """
    # an existing relative path with a colon (``a:b``) is a path where paths are allowed
    scp_path = local_paths and repo is not None and "://" not in repo and (cwd / repo).exists()
    if repo is not None and is_url(repo) and not scp_path:
        clean, auth = split_credentials(repo)
        label = redact_url(repo)
        git_dir = _fetch_mirror(
            clean, auth, label, cache_dir, want_head=branch is None and commit is None
        )
        if commit is not None and rev(git_dir, commit) is None and _is_full_sha(commit):
            # A commit on no branch (a merge request's head, say) can often be fetched by sha.
            git(*auth.config, "fetch", "-q", "origin", commit, git_dir=git_dir, env=auth.env,
                check=False)
        sha, name = _pick(git_dir, label, branch, commit)
        return Source(repo=repo, branch=name, commit=sha, git_dir=git_dir)
    if not local_paths:
        raise RepoError(
            f"{repo or 'no repository'}: this server takes a git bundle or a repository URL, "
            "never a path on its disk"
        )
    if repo is None:
        proc = git("rev-parse", "--show-toplevel", cwd=cwd, check=False)
        if proc.returncode != 0:
            raise RepoError(f"not inside a git repository: {cwd} (use --repo PATH|URL)")
        return _resolve_local(Path(proc.stdout.strip()), branch, commit, dirty=dirty)
    path = Path(repo).expanduser()
    return _resolve_local(
        path if path.is_absolute() else cwd / path, branch, commit, strict=True, dirty=dirty
    )


def checkout(source: Source, dest: Path) -> None:
    """Write the committed files of ``source.commit`` into ``dest`` (new or empty).

    A scratch repository borrows ``source.git_dir``'s objects, so only our own configuration
    applies (no filter, hook or fsmonitor of the source repository) and the source is only read;
    no ``.git`` is written into ``dest`` and submodules are left as empty directories. Errors
    name the commit, never a path of this machine.
    """
    if dest.exists() and any(dest.iterdir()):
        raise RepoError(f"cannot check out {source.commit[:12]}: the workspace is not empty")
    dest.mkdir(parents=True, exist_ok=True)
    objects = objects_dir(source.git_dir)
    with tempfile.TemporaryDirectory(prefix="cicd-checkout-") as tmp:
        scratch = Path(tmp) / "scratch.git"
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index"),
               "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(objects)}
        for args in (
            ["init", "-q", "--bare", *_object_format(source.git_dir), str(scratch)],
            *(
                [*_CHECKOUT_CONFIG, f"--work-tree={dest}", *step]
                for step in (["read-tree", source.commit], ["checkout-index", "--all", "--force"])
            ),
        ):
            proc = git(
                *args, git_dir=None if args[0] == "init" else scratch, env=env, check=False
            )
            if proc.returncode != 0:
                err = last_line(proc.stderr.replace(str(dest), "workspace").replace(tmp, ""))
                raise RepoError(
                    f"cannot check out {source.commit[:12]} of {redact_url(source.repo)}: {err}"
                )


def objects_dir(git_dir: Path) -> Path:
    """The object directory of ``git_dir`` (of its main repository for a linked worktree)."""
    objects = git("rev-parse", "--git-path", "objects", git_dir=git_dir).stdout.strip()
    return (git_dir / objects if not Path(objects).is_absolute() else Path(objects)).resolve()


def _object_format(git_dir: Path) -> list[str]:
    """``--object-format`` for a scratch repository that reads ``git_dir``'s objects."""
    proc = git("rev-parse", "--show-object-format", git_dir=git_dir, check=False)
    fmt = proc.stdout.strip()
    return [f"--object-format={fmt}"] if proc.returncode == 0 and fmt in ("sha1", "sha256") else []


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
    # the redacted URL: a hash of a weak password in the store could be reversed by guessing
    payload = json.dumps(
        [redact_url(source.repo), source.commit, pipeline_name, hashlib.sha256(content).hexdigest()]
    )
    return hashlib.sha256(payload.encode()).hexdigest()


# --- resolving -----------------------------------------------------------------------------


def _resolve_local(
    path: Path, branch: str | None, commit: str | None, *, strict: bool = False, dirty: bool
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
    uncommitted: list[str] = []
    if dirty and bare != "true" and sha == rev(git_dir, "HEAD"):
        uncommitted = _dirty_paths(top)
    return Source(repo=str(top), branch=name, commit=sha, git_dir=git_dir, dirty=uncommitted)


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
    """Uncommitted paths of the user's own working tree (the CLI only: ``git status`` reads it)."""
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


def _fetch_mirror(
    url: str, auth: Auth, label: str, cache_dir: Path, *, want_head: bool
) -> Path:
    """A bare clone of ``url`` (credential-free) under ``cache_dir``, cloned or brought up to date.

    Messages name the URL as ``label`` and give git's reason, never a path of this machine.
    """
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    git_dir = cache_dir / f"{slug(url)}-{key}.git"
    with locked(git_dir):
        if git_dir.exists() and git("rev-parse", git_dir=git_dir, check=False).returncode != 0:
            remove_tree(git_dir)  # a clone interrupted before we renamed it cannot be here; be safe
        if not git_dir.exists():
            tmp = Path(tempfile.mkdtemp(prefix=".clone-", dir=cache_dir))
            try:
                proc = git(
                    *auth.config, "clone", "-q", "--bare", "--", url, str(tmp), env=auth.env,
                    check=False,
                )
                if proc.returncode != 0:
                    err = last_line(proc.stderr.replace(str(tmp), "").replace(url, label))
                    raise RepoError(f"cannot clone {label}: {err}")
                for spec in ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"):
                    git("config", "--add", "remote.origin.fetch", spec, git_dir=tmp)
                tmp.rename(git_dir)
            finally:
                if tmp.exists():  # nothing half-written stays in the cache
                    remove_tree(tmp)
            return git_dir
        proc = git(*auth.config, "fetch", "-q", "--prune", "origin", git_dir=git_dir,
                   env=auth.env, check=False)
        if proc.returncode != 0:
            err = last_line(proc.stderr.replace(str(git_dir), "").replace(url, label))
            raise RepoError(f"cannot fetch {label}: {err}")
        if want_head:  # the remote's default branch may have changed since the clone
            out = git(
                *auth.config, "ls-remote", "--symref", "origin", "HEAD", git_dir=git_dir,
                env=auth.env, check=False,
            ).stdout
            m = re.match(r"ref: (refs/heads/\S+)\tHEAD", out)
            if m:
                git("symbolic-ref", "HEAD", m.group(1), git_dir=git_dir, check=False)
    return git_dir


def _is_full_sha(revision: str) -> bool:
    return re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", revision) is not None


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
