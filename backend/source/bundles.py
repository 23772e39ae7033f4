"""Git bundles: how a local commit travels to a remote cicd server, which runs exactly it.

A bundle is unpacked into a bare repository the server made itself, with ``git()``'s hardening:
nothing in a bundle can make git run a command, and errors never show the server's paths.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from backend.errors import RepoError
from backend.source.git import git, last_line, locked, rev, slug
from backend.source.workspace import Source, objects_dir


def make_bundle(source: Source) -> bytes:
    """A git bundle holding ``source.commit`` and its history, to send to a remote server.

    The source repository gets no new ref: the bundle is made from a scratch repository that
    borrows its objects (``objects/info/alternates``).
    """
    objects = objects_dir(source.git_dir)
    with tempfile.TemporaryDirectory(prefix="cicd-bundle-") as tmp:
        scratch = Path(tmp) / "scratch.git"
        git("init", "-q", "--bare", str(scratch))
        (scratch / "objects" / "info" / "alternates").write_text(f"{objects}\n")
        git("update-ref", "refs/heads/cicd-bundle", source.commit, git_dir=scratch)
        proc = git(
            "bundle",
            "create",
            "-q",
            "-",
            "refs/heads/cicd-bundle",
            git_dir=scratch,
            text=False,
            check=False,
        )
        if proc.returncode != 0:
            err = last_line(proc.stderr.decode(errors="replace"))
            raise RepoError(f"cannot bundle {source.commit[:12]} of {source.repo}: {err}")
        data: bytes = proc.stdout
        return data


@contextlib.contextmanager
def _bundle_file(data: bytes | Path, cache_dir: Path) -> Iterator[str]:
    """The path of a file holding the bundle: ``data`` itself, or a temporary copy of bytes."""
    if isinstance(data, Path):
        yield str(data)
        return
    with tempfile.NamedTemporaryFile(dir=cache_dir, suffix=".bundle") as f:
        f.write(data)
        f.flush()
        yield f.name


def source_from_bundle(
    data: bytes | Path, commit: str, branch: str | None, repo_label: str, cache_dir: Path
) -> Source:
    """Unpack a bundle from ``make_bundle`` into a bare repository under ``cache_dir``.

    Bundles of one ``repo_label`` share a repository; ``commit`` must be in it afterwards.
    ``data`` is the bundle's bytes, or a file holding them (a server streams uploads to disk).
    Errors say what is wrong with the bundle, never where it was kept.
    """
    key = hashlib.sha256(repo_label.encode()).hexdigest()[:16]
    git_dir = cache_dir / f"bundle-{slug(repo_label)}-{key}.git"
    if isinstance(data, Path):
        with data.open("rb") as handle:
            ref_ns = hashlib.file_digest(handle, "sha256").hexdigest()[:16]
    else:
        ref_ns = hashlib.sha256(data).hexdigest()[:16]
    with locked(git_dir):
        if not git_dir.exists():
            git("init", "-q", "--bare", str(git_dir))
        # the same bytes again (runs of one commit at once, a resubmit): their refs are here
        # from the fetch that brought them, so there is nothing to verify or add (a packed
        # namespace is just fetched again)
        if not (git_dir / "refs" / "bundles" / ref_ns).is_dir():
            _fetch(data, git_dir, ref_ns, repo_label, cache_dir)
    sha = rev(git_dir, commit) if not commit.startswith("-") else None
    if sha is None:
        raise RepoError(f"commit '{commit}' not found in the bundle for {repo_label}")
    return Source(repo=repo_label, branch=branch, commit=sha, git_dir=git_dir)


def _fetch(
    data: bytes | Path, git_dir: Path, ref_ns: str, repo_label: str, cache_dir: Path
) -> None:
    """Verify the bundle, then fetch its refs into ``refs/bundles/<ref_ns>/`` of ``git_dir``."""
    with _bundle_file(data, cache_dir) as bundle:
        for args in (
            ["bundle", "verify", "-q", bundle],
            ["fetch", "-q", "--no-tags", bundle, f"+refs/*:refs/bundles/{ref_ns}/*"],
        ):
            proc = git(*args, git_dir=git_dir, check=False)
            if proc.returncode != 0:
                reason = _scrubbed(proc.stderr, Path(bundle))
                raise RepoError(f"bad bundle for {repo_label}: {reason}")


def bundled_source(
    commit: str, branch: str | None, repo_label: str, cache_dir: Path
) -> Source | None:
    """The ``Source`` of ``commit`` when a bundle of ``repo_label`` brought it before
    (``source_from_bundle`` keeps them), else None: what a server retries a run from."""
    key = hashlib.sha256(repo_label.encode()).hexdigest()[:16]
    git_dir = cache_dir / f"bundle-{slug(repo_label)}-{key}.git"
    if not git_dir.is_dir() or commit.startswith("-"):
        return None
    with locked(git_dir):
        sha = rev(git_dir, commit)
    if sha is None:
        return None
    return Source(repo=repo_label, branch=branch, commit=sha, git_dir=git_dir)


def _scrubbed(stderr: str, bundle: Path) -> str:
    """git's reason, with the bundle's file (a path of the server's disk) named "the bundle"."""
    text = stderr.replace(f"'{bundle}'", "the bundle").replace(str(bundle), "the bundle")
    text = text.replace(str(bundle.parent) + "/", "").replace(str(bundle.parent), "")
    return last_line(text)
