"""Running the ``git`` CLI for workspaces and bundles: never interactive, never anything a user
supplied, always within a time limit, one-line errors.

A repository we run git in may come from anyone (a URL, a bundle, a folder a job prepared), so
every call made through ``git()`` is hardened against everything git can be told to execute:

- no hooks (``core.hooksPath=/dev/null``), no file-system monitor (``core.fsmonitor=false``);
- no system or user configuration (``GIT_CONFIG_NOSYSTEM``, ``GIT_CONFIG_GLOBAL=/dev/null``, a
  ``HOME`` where nothing can be read) and no system or user attributes file, so no filter,
  textconv, diff driver, credential helper or ``insteadOf`` of theirs applies; Git LFS's filters
  are switched off explicitly;
- only the file, git, ssh, http and https transports (``protocol.allow=never`` plus an
  allow-list): ``ext::`` and ``fd::`` remotes, which run commands or read our descriptors, fail;
- inherited ``GIT_*`` variables are dropped (a hook's ``GIT_DIR``, someone's ``GIT_CONFIG_*`` or
  ``GIT_ASKPASS``...), except the operator's ssh, TLS and trace settings;
- a time limit (``CICD_GIT_TIMEOUT`` seconds for clone/fetch, default 10 minutes; one minute
  at most for local plumbing), after which git's whole process group is killed and the
  failure reads ``timed out after N s``.

Prompts are off (``GIT_TERMINAL_PROMPT=0``, ssh in batch mode) and output is in English, so a
failure can be reported as git's last informative line.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from backend.errors import RepoError, UsageError

TIMEOUT_ENV = "CICD_GIT_TIMEOUT"
NETWORK_TIMEOUT = 600.0  # seconds for commands that talk to a remote or write a whole tree
LOCAL_TIMEOUT = 60.0  # at most this for local plumbing (rev-parse, cat-file, read-tree...)
_SLOW = frozenset({"clone", "fetch", "ls-remote", "bundle", "checkout-index", "status"})

# Inherited GIT_* variables we keep: how the operator reaches remotes, never what runs in a repo.
_ENV_KEEP = frozenset({"GIT_SSH", "GIT_SSH_COMMAND", "GIT_SSH_VARIANT", "GIT_SSL_NO_VERIFY",
                       "GIT_SSL_CAINFO", "GIT_SSL_CAPATH", "GIT_HTTP_USER_AGENT"})
ALLOWED_PROTOCOLS = ("file", "git", "ssh", "http", "https")

# Configuration that beats any repository's own (command-line scope has the highest priority).
HARDENING = (
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.attributesFile=/dev/null",
    "credential.helper=",  # an empty value clears the helpers a repository lists
    "filter.lfs.smudge=",
    "filter.lfs.clean=",
    "filter.lfs.process=",
    "filter.lfs.required=false",
    "protocol.allow=never",
    *(f"protocol.{name}.allow=always" for name in ALLOWED_PROTOCOLS),
)


def git(
    *args: str,
    git_dir: Path | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
    text: bool = True,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[Any]:
    """Run git hardened as the module says; ``env`` adds variables for this call only.

    A call over its time limit (``timeout``, default by command) is killed with its children
    and returns exit status -9 with ``timed out after N s`` as its stderr (raised with ``check``).
    """
    full_env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("GIT_") and k not in _ENV_KEEP and not k.startswith("GIT_TRACE"))
        and k != "XDG_CONFIG_HOME"
    }
    full_env.update(
        GIT_TERMINAL_PROMPT="0",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_ATTR_NOSYSTEM="1",
        GIT_ALLOW_PROTOCOL=":".join(ALLOWED_PROTOCOLS),
        HOME=os.devnull,  # git ignores files under a HOME that is not a directory
        LC_ALL="C",
        LANGUAGE="C",
    )
    if "GIT_SSH_COMMAND" not in full_env and "GIT_SSH" not in full_env:
        full_env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
    full_env.update(env or {})
    hardening = [part for setting in HARDENING for part in ("-c", setting)]
    cmd = ["git", *hardening, *([f"--git-dir={git_dir}"] if git_dir else []), *args]
    command = _subcommand(args)
    limit = timeout if timeout is not None else default_timeout(command)
    proc = _run(cmd, cwd, full_env, text, limit)
    if check and proc.returncode != 0:
        err = proc.stderr if text else proc.stderr.decode(errors="replace")
        raise RepoError(f"git {command} failed: {last_line(err)}")
    return proc


def default_timeout(command: str) -> float:
    """Seconds a git ``command`` may take: ``CICD_GIT_TIMEOUT`` or 10 minutes, less if local."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    limit = NETWORK_TIMEOUT
    if raw:
        try:
            limit = float(raw)
        except ValueError:
            limit = -1.0
        if not limit > 0:
            raise UsageError(f"{TIMEOUT_ENV}={raw!r}: expected a positive number of seconds")
    return limit if command in _SLOW else min(limit, LOCAL_TIMEOUT)


def _subcommand(args: tuple[str, ...]) -> str:
    """The git command among ``args`` (after options such as ``-c key=value``)."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == "-c":
            skip = True
        elif not arg.startswith("-"):
            return arg
    return "git"


def _run(
    cmd: list[str], cwd: Path | None, env: dict[str, str], text: bool, limit: float
) -> subprocess.CompletedProcess[Any]:
    """Run ``cmd`` in its own process group, which is killed on timeout or on our way out."""
    try:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=text, start_new_session=True,
        )
    except FileNotFoundError:
        if cwd is not None and not Path(cwd).is_dir():
            raise RepoError(f"{cwd} is not a directory") from None
        raise RepoError("git is not installed; cicd needs it to check out repositories") from None
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        message = f"fatal: timed out after {limit:g} s\n"
        return subprocess.CompletedProcess(
            cmd, -9, "" if text else b"", message if text else message.encode()
        )
    except BaseException:  # Ctrl-C, a thread's exit: leave no git behind
        _kill_group(proc)
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _kill_group(proc: subprocess.Popen[Any]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:  # a descendant left the group and holds our pipes
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()


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
