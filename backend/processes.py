"""Processes cicd starts and watches: whether one still runs, and what environment it gets.

Shared by the daemon, the local Prefect server, the workers and run settling: whether a pid
still runs (and is still the process recorded, not a reused pid), the allow-listed environment
of a background process, and one helper for each background process's life: its atomic 0600
state file and lock (``ProcessState``), ``spawn``, ``wait_for`` (health, with a sleep between
probes) and ``stop_process``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar


def pid_running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (a killed child nobody reaped).

    A zombie counts as gone: where PID 1 never reaps, a killed daemon or server would otherwise
    look alive for ever.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): trust kill(0)
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


# What a background process cicd starts (the local daemon, the local Prefect server) inherits
# from the command that happened to start it. That command's environment may hold secrets
# (`cicd run --secret TOKEN` reads TOKEN from it; CI systems export DOCKER_PASSWORD and the like)
# which would then sit in the long-lived process's /proc/<pid>/environ for hours; secrets travel
# in the run request instead. Only what configures cicd, Prefect, Docker, git, Python, the
# locale, proxies and certificates is passed on, by name: a prefix like DOCKER_ would let secrets
# by (values, not paths to them: an agent socket or a CA file is named, never its content).
# fmt: off
INHERITED_NAMES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP",
    "VIRTUAL_ENV", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "http_proxy", "https_proxy", "no_proxy", "all_proxy",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
    # what the docker SDK reads (and the folder of registry logins, not the logins themselves)
    "DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONFIG", "DOCKER_CONTEXT",
    "PYTHONPATH", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PYTHONWARNINGS",
    "PYTHONUTF8", "PYTHONIOENCODING", "PYTHONPYCACHEPREFIX", "PYTHONSAFEPATH", "PYTHONNOUSERSITE",
    # git, when the daemon fetches a repository: where the ssh agent and certificates are
    "SSH_AUTH_SOCK", "GIT_SSH", "GIT_SSH_COMMAND", "GIT_SSL_CAINFO", "GIT_SSL_CAPATH",
    # cicd's own settings outside ``Settings``
    "CICD_DAEMON", "CICD_DAEMON_IDLE_TIMEOUT", "CICD_IDLE_TIMEOUT", "CICD_HEAD_TIMEOUT",
    "CICD_KEEP_ALIVE", "CICD_MAX_CONNECTIONS", "CICD_GIT_TIMEOUT",
})
# fmt: on
# Prefect's settings (PREFECT_API_KEY included: the daemon needs it to reach a given Prefect API)
INHERITED_PREFIXES = ("LC_", "PREFECT_", "XDG_")
# a server's own token is given to it explicitly; a client's CICD_SERVER means nothing to it
NOT_INHERITED = frozenset({"CICD_API_TOKEN", "CICD_SERVER"})


def _settings_names() -> frozenset[str]:
    from backend.settings import Settings

    prefix = str(Settings.model_config.get("env_prefix", "CICD_"))
    return frozenset(f"{prefix}{name}".upper() for name in Settings.model_fields)


def background_env(environ: Mapping[str, str], **extra: str) -> dict[str, str]:
    """The environment for a background process: the allow-listed part of ``environ``, + ``extra``.

    Allowed: ``INHERITED_NAMES``, the ``CICD_*`` variables of ``backend.settings.Settings``, and
    names starting with ``INHERITED_PREFIXES`` (``PREFECT_*``, ``LC_*``, ``XDG_*``), except
    ``NOT_INHERITED``.
    """
    allowed = INHERITED_NAMES | _settings_names()
    env = {
        name: value
        for name, value in environ.items()
        if (name in allowed or name.startswith(INHERITED_PREFIXES)) and name not in NOT_INHERITED
    }
    env.update(extra)
    return env


# -- one helper for cicd's background processes (the daemon, the local Prefect server) -----------
# Each is recorded in a JSON state file ({pid, started, ...}) written atomically with mode 0600,
# guarded by a lock file beside it; ``started`` (the process's start time from /proc) tells the
# recorded process from an unrelated one that got its pid later.

T = TypeVar("T")

IDLE_ENV = "CICD_IDLE_TIMEOUT"
DEFAULT_IDLE_TIMEOUT = 30 * 60.0


def idle_timeout(environ: Mapping[str, str], *names: str) -> float:
    """Seconds a background process stays unused before it exits (0: never).

    The first of ``names`` (more specific settings) that is set wins, else ``CICD_IDLE_TIMEOUT``,
    else 30 minutes. Raises ``ValueError`` naming the variable when its value is not a number.
    """
    for name in (*names, IDLE_ENV):
        value = environ.get(name, "").strip()
        if not value:
            continue
        try:
            seconds = float(value)
        except ValueError:
            raise ValueError(f"{name}={value!r}: expected a number of seconds") from None
        if seconds != seconds or seconds in (float("inf"), float("-inf")):
            raise ValueError(f"{name}={value!r}: expected a number of seconds")
        return max(0.0, seconds)
    return DEFAULT_IDLE_TIMEOUT


def start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, /proc), None when unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    try:
        return int(fields[19])  # field 22 of proc(5); fields[0] is field 3 (the state)
    except (IndexError, ValueError):
        return None


def same_process(pid: int, started: int | None) -> bool:
    """Whether ``pid`` runs and is the process that started at ``started`` (not a reused pid).

    ``started`` None (a record without it) or a system without /proc trusts the pid alone.
    """
    if not pid_running(pid):
        return False
    if started is None:
        return True
    now = start_time(pid)
    return now is None or now == started


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created 0600, in a 0700 folder) while inside."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def write_json_atomic(path: Path, info: Mapping[str, Any]) -> None:
    """Write ``info`` as JSON to ``path`` atomically (a 0600 temporary file, then ``os.replace``).

    A reader sees the old file or the new one, never a half-written one; a failure leaves no
    temporary file behind.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(dict(info), handle)
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise


class ProcessState:
    """The state file of one background process, with the lock beside it (``NAME.lock``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_suffix(".lock")

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """Hold the lock: one caller at a time checks, starts or stops the process."""
        return file_lock(self.lock_path)

    def read(self) -> dict[str, Any] | None:
        """The recorded state, None when there is no readable record with an integer pid."""
        try:
            info = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(info, dict) or type(info.get("pid")) is not int:
            return None
        return info

    def alive(self) -> dict[str, Any] | None:
        """The recorded state if its process still runs (the same process, not a reused pid)."""
        info = self.read()
        if info is None:
            return None
        started = info.get("started")
        if not same_process(info["pid"], started if isinstance(started, int) else None):
            return None
        return info

    def record(self, pid: int, **fields: Any) -> dict[str, Any]:
        """Record process ``pid`` (with its start time) and ``fields``; return the record."""
        info = {"pid": pid, "started": start_time(pid), **fields}
        write_json_atomic(self.path, info)
        return info

    def forget(self, pid: int | None = None) -> None:
        """Remove the state file (only if it still records ``pid``, when given)."""
        if pid is not None:
            info = self.read()
            if info is None or info["pid"] != pid:
                return
        with contextlib.suppress(OSError):
            self.path.unlink()


def spawn(
    command: Sequence[str], *, env: Mapping[str, str], log: Path, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``command`` in a session of its own (a signal to its group reaches its children),
    with no stdin and its output appended to ``log`` (0600)."""
    log.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as out:
        return subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_for(
    probe: Callable[[], T | None],
    *,
    alive: Callable[[], bool],
    timeout: float,
    interval: float = 0.1,
) -> T | None:
    """Call ``probe`` every ``interval`` seconds until it returns a value, and return that.

    None when ``alive()`` turns false (the process died) or ``timeout`` seconds pass. Sleeps
    between probes: a probe that fails at once (connection refused) does not spin a CPU.
    """
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got is not None:
            return got
        if not alive() or time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def stop_process(
    pid: int,
    *,
    started: int | None = None,
    timeout: float = 10.0,
    expected: Callable[[int], bool] | None = None,
) -> bool:
    """Stop process ``pid`` and its process group: SIGTERM, then SIGKILL after ``timeout`` s.

    Nothing is signalled unless ``pid`` is the recorded process (``started``, see
    ``same_process``) and ``expected(pid)`` (e.g. its command line) agrees: a pid the system
    gave to another process since is left alone. A child of this process is reaped. Returns
    True when the process was running.
    """
    if not same_process(pid, started) or (expected is not None and not expected(pid)):
        return False
    for signum in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signum)
        deadline = time.monotonic() + timeout
        while pid_running(pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # our own child: reap it
            time.sleep(0.05)
        if not pid_running(pid):
            break
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    return True


class Leases:
    """Which processes use a shared background process: one file per user process in a folder.

    A user ``hold``s a lease for as long as it lives (the file records its pid and start time);
    a lease whose process has exited, or whose pid now belongs to another process, is stale and
    is removed by ``alive``. No user has to remember to give its lease back.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def hold(self, pid: int | None = None) -> None:
        """Record process ``pid`` (this one by default) as a user."""
        pid = os.getpid() if pid is None else pid
        write_json_atomic(self.folder / str(pid), {"pid": pid, "started": start_time(pid)})

    def drop(self, pid: int | None = None) -> None:
        """Remove the lease of ``pid`` (this process by default)."""
        with contextlib.suppress(OSError):
            (self.folder / str(os.getpid() if pid is None else pid)).unlink()

    def alive(self) -> list[int]:
        """The pids of the users still running; stale leases are removed."""
        try:
            entries = list(self.folder.iterdir())
        except OSError:
            return []
        users = []
        for entry in entries:
            if not entry.name.isdigit():
                continue  # a temporary file of a lease being written
            try:
                info = json.loads(entry.read_text())
                pid, started = int(info["pid"]), info.get("started")
            except (OSError, ValueError, TypeError, KeyError):
                pid, started = -1, None
            if pid > 0 and same_process(pid, started if isinstance(started, int) else None):
                users.append(pid)
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()
        return users
