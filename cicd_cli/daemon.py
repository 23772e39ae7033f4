"""The local backend daemon: one warm ``cicd server`` per ``CICD_HOME`` that ``cicd run`` talks to.

An in-process ``cicd run`` pays for importing Prefect, SQLAlchemy and the docker SDK and for
warming up its first flow on every call. Like Gradle's daemon, ``ensure_daemon`` starts one
backend process per ``CICD_HOME`` on first use (``cicd server --port 0`` on loopback, with a
random token) and later runs reuse it, so a warm ``cicd run`` is a light client: it submits the
run (the daemon reads the local repository directly, no bundle) and prints its events.

Files under ``CICD_HOME/daemon/``: ``daemon.json`` ({pid, url, token, fingerprint}, mode 0600),
written by the daemon once it serves and removed when it exits; ``daemon.lock``, held while a
client checks or starts the daemon (so concurrent runs start one) and by a daemon that retires
after its idle timeout (so it never leaves between a client's check and its request);
``daemon.log``, the daemon's output. A daemon started from other code or another environment
(its ``fingerprint``) is replaced. The state file also records the daemon's start time, so a
pid the system reused for another process is never taken for the daemon (nor signalled).
The files, spawning, health waits and stopping go through ``backend.processes``, shared with
the local Prefect server.

A daemon without requests or runs for ``CICD_DAEMON_IDLE_TIMEOUT`` seconds (else
``CICD_IDLE_TIMEOUT``, else 30 minutes; 0: never) exits, and stops the local Prefect server of
its ``CICD_HOME`` with it unless another process (a worker, a running ``cicd run``) uses it.

The daemon outlives the ``cicd run`` that started it, so it does not inherit that command's
environment: only the allow-listed configuration (``backend.processes.background_env``), never
the values a ``--secret`` read from it, which travel in each run's request instead.

This module is imported by every ``cicd run``: it must stay light (no Prefect, SQLAlchemy,
docker, FastAPI or ``backend.service`` at module level).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from backend.errors import CicdError
from backend.processes import (
    ProcessState,
    background_env,
    idle_timeout,
    pid_running,
    same_process,
    spawn,
    stop_process,
    wait_for,
)
from backend.settings import Settings

HEALTH_PATH = "/api/v1/health"
START_TIMEOUT = 60.0  # a fresh CICD_HOME may first start its local Prefect server
STOP_TIMEOUT = 15.0  # SIGTERM lets running runs be canceled and settled; then SIGKILL
IDLE_ENV = "CICD_DAEMON_IDLE_TIMEOUT"  # else CICD_IDLE_TIMEOUT, else 30 minutes
USABLE_TIMEOUT = 10.0  # a daemon busy with many runs may answer its health route slowly
# What a daemon inherits that changes what it does: a daemon started with other values is replaced.
FINGERPRINT_ENV = ("CICD_DATABASE_URL", "PREFECT_API_URL", "DOCKER_HOST")
_PACKAGES = ("cicd_cli", "backend", "flows")


class DaemonUnavailable(CicdError):
    """The local backend daemon cannot be started or reached."""


# -- files ----------------------------------------------------------------------------------------


def daemon_dir(home: Path) -> Path:
    """Where the daemon of ``home`` keeps its state, lock and log."""
    return home / "daemon"


def state_path(home: Path) -> Path:
    """The daemon's state file: ``{pid, url, token, fingerprint}``."""
    return daemon_dir(home) / "daemon.json"


def lock_path(state_file: Path) -> Path:
    """The lock file beside a state file."""
    return state_file.with_suffix(".lock")


def log_path(home: Path) -> Path:
    """The daemon's stdout and stderr."""
    return daemon_dir(home) / "daemon.log"


def locked(state_file: Path) -> contextlib.AbstractContextManager[None]:
    """Hold the exclusive lock beside ``state_file`` (blocking)."""
    return ProcessState(state_file).locked()


def read_state(state_file: Path) -> dict[str, Any] | None:
    """The recorded daemon, or None when there is no readable state file."""
    return ProcessState(state_file).read()


def remove_state(state_file: Path, pid: int) -> None:
    """Remove ``state_file`` if it still records process ``pid``."""
    ProcessState(state_file).forget(pid)


def _started(info: dict[str, Any]) -> int | None:
    started = info.get("started")
    return started if isinstance(started, int) else None


# -- processes ------------------------------------------------------------------------------------


def _is_daemon(pid: int) -> bool:
    """Whether ``pid`` is a ``cicd server`` (guards against a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: trust the state file
    return b"cicd_cli" in cmdline and b"server" in cmdline


def health(url: str, timeout: float = 2.0) -> int | None:
    """The HTTP status of the daemon's health route, None when nothing answers in time."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        conn.request("GET", HEALTH_PATH)
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def fingerprint() -> str:
    """What a daemon must share with a client to serve it: interpreter, code and environment."""
    root = Path(__file__).resolve().parent.parent
    newest = 0
    for package in _PACKAGES:
        for folder, _dirs, files in os.walk(root / package):
            for name in files:
                if name.endswith(".py"):
                    newest = max(newest, os.stat(os.path.join(folder, name)).st_mtime_ns)
    parts = [
        sys.executable,
        str(root),
        str(newest),
        *(os.environ.get(k, "") for k in FINGERPRINT_ENV),
    ]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def idle_timeout_from_env() -> float:
    """Seconds a daemon stays without work: ``CICD_DAEMON_IDLE_TIMEOUT``, else
    ``CICD_IDLE_TIMEOUT``, else 30 minutes."""
    try:
        return idle_timeout(os.environ, IDLE_ENV)
    except ValueError as exc:
        raise DaemonUnavailable(str(exc)) from None


# -- client side ----------------------------------------------------------------------------------


def ensure_daemon(settings: Settings, *, idle_timeout: float | None = None) -> tuple[str, str]:
    """The ``(url, token)`` of ``settings.home``'s daemon, started when none serves.

    A recorded daemon is reused when its process runs, its code and environment match this
    client's and its health route answers 200; otherwise it is stopped and a new one started.
    """
    home = settings.home
    state_file = state_path(home)
    wanted = fingerprint()
    with locked(state_file):
        info = read_state(state_file)
        if info is not None and _usable(info, wanted):
            return str(info["url"]), str(info["token"])
        if info is not None:
            stop_daemon(home)
        return _start(home, state_file, wanted, idle_timeout)


def _usable(info: dict[str, Any], wanted: str) -> bool:
    if info.get("fingerprint") != wanted or not same_process(info["pid"], _started(info)):
        return False
    status = wait_for(  # a refused connection answers at once: sleeps between the probes
        lambda: health(str(info["url"])),
        alive=lambda: pid_running(info["pid"]),
        timeout=USABLE_TIMEOUT,
        interval=0.1,
    )
    return status == 200  # 503: its store or Prefect API is gone; a new one restarts them


def _start(
    home: Path, state_file: Path, wanted: str, idle_timeout: float | None
) -> tuple[str, str]:
    token = secrets.token_urlsafe(32)
    idle = idle_timeout_from_env() if idle_timeout is None else idle_timeout
    root = str(Path(__file__).resolve().parent.parent)  # importable from any working directory
    # allow-listed: the caller's other variables (its --secret values among them) stay out of
    # the daemon's /proc/<pid>/environ; secrets travel in each run's request
    env = background_env(
        os.environ,
        CICD_HOME=str(home),
        CICD_API_TOKEN=token,
        CICD_DAEMON_FINGERPRINT=wanted,
        PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p),
    )
    command = [
        sys.executable,
        "-m",
        "cicd_cli",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--state-file",
        str(state_file),
        "--idle-timeout",
        f"{idle:g}",
    ]
    from backend.engines import spawn_local_prefect

    spawn_local_prefect(home)  # boots beside the daemon's imports instead of after them
    log = log_path(home)
    proc = spawn(command, env=env, log=log, cwd=daemon_dir(home))

    def serving() -> str | None:
        info = read_state(state_file)
        if info is not None and info["pid"] == proc.pid and health(str(info["url"])) is not None:
            return str(info["url"])
        return None

    url = wait_for(serving, alive=lambda: proc.poll() is None, timeout=START_TIMEOUT, interval=0.05)
    if url is not None:
        return url, token
    code = proc.poll()
    if code is not None:
        raise DaemonUnavailable(f"the cicd daemon exited at start (exit status {code}); see {log}")
    stop_daemon(home, pid=proc.pid)
    raise DaemonUnavailable(f"the cicd daemon did not start within {START_TIMEOUT:.0f}s; see {log}")


def stop_daemon(home: Path, *, pid: int | None = None) -> bool:
    """Stop ``home``'s daemon (SIGTERM to its process group, SIGKILL after a while).

    Runs it is executing are canceled and settled first. Returns True when one was running.
    """
    state = ProcessState(state_path(home))
    info = state.read()
    state.forget()
    started = None
    if pid is None and info is not None:
        pid, started = info["pid"], _started(info)
    if pid is None:
        return False
    return stop_process(pid, started=started, timeout=STOP_TIMEOUT, expected=_is_daemon)


# -- daemon side ----------------------------------------------------------------------------------


class DaemonWatch:
    """Inside ``cicd server``: records the state file once serving, and retires when idle.

    ``wrap`` the ASGI app so every HTTP request counts as activity; ``start`` with the uvicorn
    server before running it. With ``idle_timeout`` > 0 the server is asked to exit
    (``should_exit``) once no request has been open and ``busy()`` (runs executing) has been
    false for that long.
    """

    def __init__(
        self,
        *,
        state_file: Path | None,
        idle_timeout: float,
        url: str,
        token: str | None,
        busy: Callable[[], bool],
    ) -> None:
        self.state_file = state_file
        self.idle_timeout = idle_timeout
        self.url = url
        self.token = token
        self.busy = busy
        self.last_activity = time.monotonic()
        self.open_requests = 0
        self.retired = False  # set when it asked the server to exit for being idle
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wrap(self, app: Any) -> Any:
        """``app`` as an ASGI app that notes when each HTTP request starts and ends."""

        async def tracked(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            self.open_requests += 1
            self.last_activity = time.monotonic()
            try:
                await app(scope, receive, send)
            finally:
                self.open_requests -= 1
                self.last_activity = time.monotonic()

        return tracked

    def idle_for(self) -> float:
        """Seconds without an open request or a running run (0 while there is one)."""
        if self.open_requests > 0 or self.busy():
            self.last_activity = time.monotonic()
            return 0.0
        return time.monotonic() - self.last_activity

    def start(self, server: Any) -> None:
        """Watch uvicorn ``server`` from a daemon thread."""
        self._thread = threading.Thread(
            target=self._watch, args=(server,), name="cicd-daemon-watch", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """The server has stopped: forget the state file; after retiring for being idle, stop
        the local Prefect server too unless another process uses it."""
        self._stop.set()
        if self.state_file is not None:
            remove_state(self.state_file, os.getpid())
            if self.retired:  # the daemon: its Prefect server goes with it
                _release_prefect(self.state_file)

    def _watch(self, server: Any) -> None:
        while not server.started:
            if self._stop.wait(0.02) or server.should_exit:
                return
        if self.state_file is not None:
            ProcessState(self.state_file).record(
                os.getpid(),
                url=self.url,
                token=self.token,
                fingerprint=os.environ.get("CICD_DAEMON_FINGERPRINT", ""),
            )
        if self.idle_timeout <= 0:
            return
        step = min(1.0, self.idle_timeout / 4)
        while not self._stop.wait(step):
            if self.idle_for() < self.idle_timeout:
                continue
            with contextlib.ExitStack() as stack:
                if self.state_file is not None:  # no client is between its check and its run
                    stack.enter_context(locked(self.state_file))
                if self.idle_for() < self.idle_timeout:
                    continue
                if self.state_file is not None:
                    remove_state(self.state_file, os.getpid())
                self.retired = True
                server.should_exit = True
            return


def _release_prefect(state_file: Path) -> None:
    """A retiring daemon stops its home's local Prefect server unless something else uses it."""
    from backend.engines import release_local_prefect

    home = state_file.parent.parent  # CICD_HOME/daemon/daemon.json
    with contextlib.suppress(Exception):  # best effort: its own watchdog stops it later anyway
        release_local_prefect(home)
