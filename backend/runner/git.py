"""Running the ``git`` CLI for workspaces and bundles: never interactive, one-line errors.

Inherited ``GIT_*`` variables that would redirect a command (a hook's ``GIT_DIR``, ...) are
dropped, prompts are off (``GIT_TERMINAL_PROMPT=0``, ssh in batch mode) and output is in English,
so a failure can be reported as git's last informative line.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from backend.errors import RepoError

# Variables a git hook or the user's shell may have set that would redirect our git commands.
_ENV_DROP = frozenset(
    "GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_OBJECT_DIRECTORY GIT_COMMON_DIR GIT_NAMESPACE"
    " GIT_ALTERNATE_OBJECT_DIRECTORIES GIT_CEILING_DIRECTORIES GIT_PREFIX".split()
)


def git(
    *args: str,
    git_dir: Path | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
    text: bool = True,
) -> subprocess.CompletedProcess[Any]:
    """Run git without a terminal: it never prompts, and inherited GIT_* variables are dropped."""
    full_env = {k: v for k, v in os.environ.items() if k not in _ENV_DROP}
    full_env.update(GIT_TERMINAL_PROMPT="0", LC_ALL="C", LANGUAGE="C")
    if "GIT_SSH_COMMAND" not in full_env and "GIT_SSH" not in full_env:
        full_env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
    full_env.update(env or {})
    cmd = ["git", *([f"--git-dir={git_dir}"] if git_dir else []), *args]
    try:
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=text,
        )
    except FileNotFoundError:
        raise RepoError("git is not installed; cicd needs it to check out repositories") from None
    if check and proc.returncode != 0:
        err = proc.stderr if text else proc.stderr.decode(errors="replace")
        raise RepoError(f"git {args[0]} failed in {git_dir or cwd}: {last_line(err)}")
    return proc


_BOILERPLATE = (
    "Could not read from remote repository.",
    "Please make sure you have the correct access rights",
    "and the repository exists.",
)


def last_line(stderr: str) -> str:
    """git's last informative stderr line, without its ``fatal:`` prefix."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.endswith(_BOILERPLATE)] or lines
    line = lines[-1] if lines else "unknown error"
    return re.sub(r"^(fatal|error): ", "", line)


def rev(git_dir: Path, revision: str) -> str | None:
    """The full sha of commit ``revision`` in ``git_dir``, None when there is no such commit."""
    proc = git(
        "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}", git_dir=git_dir, check=False
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def slug(text: str) -> str:
    """A short file-name-safe name for a repository path or URL."""
    name = text.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].removesuffix(".git")
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:40] or "repo"


@contextlib.contextmanager
def locked(git_dir: Path) -> Iterator[None]:
    """Serialise clone/fetch of one cache entry between threads and processes."""
    git_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(git_dir.with_name(git_dir.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
