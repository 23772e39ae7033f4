"""Which Prefect API a process talks to, and the local server cicd starts on first use.

Prefect reads its settings from the environment when it is first imported, so
``configure_prefect`` must run before ``import prefect``. It never imports Prefect itself.

With ``PREFECT_API_URL`` set, that API is used as is. Otherwise cicd starts one Prefect
server per ``CICD_HOME`` (``flows.prefect_server``: ``prefect server start`` without its CLI,
tuned by ``SERVER_ENV``), records its URL and pid under ``CICD_HOME/prefect/``, and every later
command reuses it: no command pays a temporary server's start, and no state is lost when a
short-lived process exits. A fresh home's server starts from a migrated copy of its database
(the machine's template) and does not wait for it (``configure_prefect(wait=False)``): the
first run's first jobs start meanwhile (``backend.headstart``).

That server holds every run's logs and can cancel runs, so it is locked down: it requires an
auth string (``PREFECT_SERVER_API_AUTH_STRING``, generated once into ``CICD_HOME/prefect/auth``,
0600) that ``configure_prefect`` hands to every Prefect client cicd runs or starts
(``PREFECT_API_AUTH_STRING``: the daemon, embedded runs, workers and their flow runs); it
answers cross-origin requests from its own origin only, not ``*``, so a web page cannot read
it; and it gets an allow-listed environment (``backend.processes.background_env``), not the
starting command's secrets.

It does not run for ever. Every process that uses it through ``configure_prefect`` (the daemon,
``cicd server``, ``cicd worker``, an embedded ``cicd run``) holds a lease on it for its lifetime
(``CICD_HOME/prefect/users/``); a small watchdog (``backend.watchdog``) started with it stops it
once no lease holder has been alive for ``CICD_IDLE_TIMEOUT`` seconds (30 minutes by default, 0:
never), and a daemon that retires after its own idle timeout stops it at once when nothing else
uses it (``release_local_server``). The next command starts it again.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.metadata
import os
import shutil
import socket
import sqlite3
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from backend.errors import CicdError
from backend.processes import (
    Leases,
    ProcessState,
    background_env,
    idle_timeout,
    pid_running,
    spawn,
    stop_process,
    wait_for,
)
from backend.tokens import read_secret, secret_file

# Offline-safe and tuned: no telemetry; SQLite lock contention cut by batching (PREFECT_NOTES.md).
SERVER_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "500",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "1000",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    # SQLite "database is locked" answers are 503s that Prefect's client retries after 2 s:
    # record them in server.log, where a run that stalled for 2 s finds its explanation
    "PREFECT_API_LOG_RETRYABLE_ERRORS": "true",
}
# Defaults the environment may change: cicd uses no automations, and their service builds a
# second copy of the API app at start (~1 s): PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED=true
# turns them on.
SERVER_DEFAULTS = {"PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false"}
CLIENT_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL",
    "PREFECT_CLI_PROMPT": "false",
    # our servers run without CSRF protection: skip the token fetch (a 422) before each write
    "PREFECT_CLIENT_CSRF_SUPPORT_ENABLED": "false",
}
DEFAULT_PORT = 4200
START_TIMEOUT = 90.0


class PrefectUnavailable(CicdError):
    """The Prefect API cannot be reached or started."""


_pending: tuple[Path, str] | None = None  # (home, url) configured without waiting for it
_waiting = threading.Lock()  # runs of a daemon that arrive at once wait for it together


def _healthy(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as reply:
            return reply.status == 200
    except OSError:
        return False


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise PrefectUnavailable("no free TCP port on 127.0.0.1 for the Prefect server")


def server_state_file(home: Path) -> Path:
    """Where the local Prefect server's pid and URL are recorded."""
    return home / "prefect" / "server.json"


def _state(home: Path) -> ProcessState:
    return ProcessState(server_state_file(home))  # its lock: prefect/server.lock


def users(home: Path) -> Leases:
    """The processes using ``home``'s local Prefect server (one lease file each)."""
    return Leases(home / "prefect" / "users")


def auth_path(home: Path) -> Path:
    """Where the auth string of ``home``'s local Prefect server is kept (0600)."""
    return home / "prefect" / "auth"


def local_auth_string(home: Path) -> str:
    """The auth string of ``home``'s local Prefect server, made on first use and then kept.

    Kept across restarts, so a client configured before a restart still gets in.
    """
    return secret_file(auth_path(home), prefix="cicd:")


def auth_header(home: Path) -> dict[str, str]:
    """The ``Authorization`` header Prefect's client sends to ``home``'s local server."""
    value = read_secret(auth_path(home))
    if value is None:
        return {}
    return {"Authorization": "Basic " + base64.b64encode(value.encode()).decode()}


def _secured(info: dict[str, object] | None) -> bool:
    # a server recorded without it was started by an older cicd: open to any web page
    return info is not None and info.get("secured") is True


def read_local_server(home: Path) -> dict[str, Any] | None:
    """The recorded local server of ``home`` if its process is alive (and is the process
    recorded: a pid reused by another process since does not count), else None."""
    return _state(home).alive()


def start_local_server(home: Path, host: str = "127.0.0.1", port: int | None = None) -> str:
    """Return the URL of ``home``'s Prefect server, starting it when none is running."""
    prefect_home = home / "prefect"
    home.mkdir(mode=0o700, parents=True, exist_ok=True)  # private, as Settings.ensure_home makes it
    prefect_home.mkdir(mode=0o700, exist_ok=True)
    with _state(home).locked():  # two commands at once start one server
        users(home).hold()  # the caller uses it: its watchdog keeps it while the caller lives
        info = read_local_server(home)
        if info is not None and not _secured(info):
            stop_local_server(home)
            info = None
        if info is not None:
            url = str(info["url"])
            if _wait_healthy(url, int(info["pid"]), START_TIMEOUT):
                _save_template(prefect_home)
                return url
            stop_local_server(home)
        url, pid = _spawn(home, host, port)
        if not _wait_healthy(url, pid, START_TIMEOUT):
            stop_local_server(home)
            raise PrefectUnavailable(
                f"the local Prefect server did not start within {START_TIMEOUT:.0f}s "
                f"(see {prefect_home / 'server.log'})"
            )
        _save_template(prefect_home)
        return url


def spawn_local_server(home: Path) -> None:
    """Start ``home``'s Prefect server in the background unless one runs; do not wait for it.

    Lets a caller overlap the server's start (seconds on a fresh database) with other work;
    ``start_local_server`` later waits for the same process.
    """
    if os.environ.get("PREFECT_API_URL"):
        return
    prefect_home = home / "prefect"
    home.mkdir(mode=0o700, parents=True, exist_ok=True)  # private, as Settings.ensure_home makes it
    prefect_home.mkdir(mode=0o700, exist_ok=True)
    with _state(home).locked():
        info = read_local_server(home)
        if info is not None and not _secured(info):
            stop_local_server(home)
            info = None
        if info is None:
            _spawn(home, "127.0.0.1", None)


def _spawn(home: Path, host: str, port: int | None) -> tuple[str, int]:
    """Start the Prefect server of ``home`` and record it; (url, pid). Lock held."""
    prefect_home = home / "prefect"
    database, template = prefect_home / "prefect.db", _template_path()
    postgres = prefect_postgres_url(os.environ)
    from_template = postgres is None and not database.exists() and template.exists()
    if from_template:
        shutil.copyfile(template, database)  # migrated already: starts in ~3 s instead of ~8 s
    port = _free_port(port or DEFAULT_PORT)
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/api"
    auth = local_auth_string(home)
    # the UI is served from the API's own origin: no other page needs to read the API
    origins = [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]
    env = background_env(
        {**SERVER_DEFAULTS, **os.environ},
        **SERVER_ENV,
        PREFECT_HOME=str(prefect_home),
        PREFECT_SERVER_API_HOST=host,
        PREFECT_SERVER_API_PORT=str(port),
        PREFECT_API_URL=url,
        PREFECT_SERVER_API_AUTH_STRING=auth,
        PREFECT_API_AUTH_STRING=auth,  # for the server's own client, if it uses one
    )
    env.setdefault("PREFECT_API_SSL_CERT_FILE", str(loopback_ca_file(home)))  # its own clients
    if from_template:  # its block types are registered already: ~1.5 s less to start
        env["PREFECT_API_BLOCKS_REGISTER_ON_START"] = "false"
    if postgres is not None:  # beside cicd's own PostgreSQL store, in a database of its own
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = ensure_prefect_database(
            postgres, os.environ["CICD_DATABASE_URL"]
        )
    if host not in ("127.0.0.1", "localhost"):
        env.setdefault("PREFECT_SERVER_UI_API_URL", f"http://{socket.gethostname()}:{port}/api")
        origins.append(f"http://{socket.gethostname()}:{port}")
    env["PREFECT_SERVER_API_CORS_ALLOWED_ORIGINS"] = ",".join(origins)
    # `prefect server start` in the foreground, without loading Prefect's CLI first
    command = [sys.executable, "-m", "flows.prefect_server", "--host", host, "--port", str(port)]
    root = str(Path(__file__).resolve().parent.parent)  # importable from any directory
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    idle = _idle_timeout()
    if idle > 0:  # a watchdog stops the server once nothing has used it for that long
        state = _state(home)
        command = [
            sys.executable,
            "-m",
            "backend.watchdog",
            "--leases",
            str(users(home).folder),
            "--idle",
            f"{idle:g}",
            "--lock",
            str(state.lock_path),
            "--state",
            str(state.path),
            "--",
            *command,
        ]
    proc = spawn(command, env=env, log=prefect_home / "server.log")
    _state(home).record(proc.pid, url=url, secured=True, idle_timeout=idle)
    return url, proc.pid


PREFECT_DATABASE_SUFFIX = "_prefect"


def prefect_postgres_url(environ: dict[str, str] | os._Environ[str]) -> str | None:
    """The PostgreSQL database the local Prefect server should use, or None for SQLite.

    When cicd's store is on PostgreSQL (``CICD_DATABASE_URL``) and no
    ``PREFECT_API_DATABASE_CONNECTION_URL`` says otherwise, the Prefect server cicd starts
    keeps its state on the same PostgreSQL server, in the database ``<cicd's>_prefect`` (never
    cicd's own: Prefect runs its own migrations), so many runs at once meet no SQLite lock.
    """
    if environ.get("PREFECT_API_DATABASE_CONNECTION_URL"):
        return None  # the user's choice, passed through to the server as it is
    configured = environ.get("CICD_DATABASE_URL", "")
    if not configured.startswith(("postgresql", "postgres:")):
        return None
    from sqlalchemy.engine import make_url

    url = make_url(configured)
    return url.set(
        drivername="postgresql+asyncpg",
        database=f"{url.database or 'cicd'}{PREFECT_DATABASE_SUFFIX}",
        query={},  # libpq options (a search_path) mean nothing to asyncpg
    ).render_as_string(hide_password=False)


def ensure_prefect_database(url: str, through: str) -> str:
    """Create the database of ``url`` when it does not exist, connected as cicd's store is
    (``through``, CICD_DATABASE_URL: the role needs CREATEDB, or an administrator creates the
    database once); return ``url``. PrefectUnavailable in one line otherwise."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    target = make_url(url)
    name = target.database or ""
    admin = create_engine(through, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            found = connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
            if not found:
                quoted = '"' + name.replace('"', '""') + '"'
                connection.execute(text(f"CREATE DATABASE {quoted}"))
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise PrefectUnavailable(
            f"cannot prepare the Prefect database '{name}' on {target.host}: {reason} "
            f"(create it, or set PREFECT_API_DATABASE_CONNECTION_URL)"
        ) from None
    finally:
        admin.dispose()
    return url


def _idle_timeout() -> float:
    try:
        return idle_timeout(os.environ)
    except ValueError as exc:
        raise PrefectUnavailable(str(exc)) from None


def _template_path() -> Path:
    """A freshly migrated Prefect database kept per machine and Prefect version.

    Migrating a new Prefect database takes most of a fresh server's start; each new
    ``CICD_HOME`` starts from a copy of the first one instead.
    """
    try:
        version = importlib.metadata.version("prefect")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "cicd" / f"prefect-{version}.db"


def _save_template(prefect_home: Path) -> None:
    """Keep a consistent copy of a just-started server's database as the machine's template."""
    template, database = _template_path(), prefect_home / "prefect.db"
    if (
        template.exists()
        or not database.exists()
        or "PREFECT_API_DATABASE_CONNECTION_URL" in (os.environ)
    ):
        return
    with contextlib.suppress(OSError, sqlite3.Error):
        template.parent.mkdir(parents=True, exist_ok=True)
        partial = template.with_suffix(f".{os.getpid()}.tmp")
        source, copy = sqlite3.connect(database), sqlite3.connect(partial)
        try:
            source.backup(copy)  # a consistent snapshot while the server writes
        finally:
            copy.close()
            source.close()
        os.replace(partial, template)


def _wait_healthy(url: str, pid: int, timeout: float) -> bool:
    healthy = wait_for(
        lambda: True if _healthy(url) else None,
        alive=lambda: pid_running(pid),
        timeout=timeout,
        interval=0.05,
    )
    return healthy is not None


def stop_local_server(home: Path) -> bool:
    """Stop ``home``'s local Prefect server if one runs; True when one was stopped."""
    state = _state(home)
    info = state.alive()
    state.forget()
    if info is None:
        return False
    started = info.get("started")
    stop_process(info["pid"], started=started if isinstance(started, int) else None)
    return True


def hold_local_server(home: Path) -> None:
    """Record this process as a user of ``home``'s local server (for as long as it lives).

    Under the server's lock: a watchdog about to stop the idle server either sees the lease
    and keeps it, or has removed its state first, and this process starts a new one.
    """
    home.mkdir(mode=0o700, parents=True, exist_ok=True)  # private, as Settings.ensure_home makes it
    (home / "prefect").mkdir(mode=0o700, exist_ok=True)
    with _state(home).locked():
        users(home).hold()


def release_local_server(home: Path) -> bool:
    """This process no longer uses ``home``'s local server: stop it now if nothing else does.

    Called by a daemon retiring after its idle timeout, so the server goes with it instead of
    idling on until its own watchdog's timeout. True when it was stopped.
    """
    with _state(home).locked():
        leases = users(home)
        leases.drop()
        if leases.alive():
            return False
        return stop_local_server(home)


def configure_prefect(home: Path, start: bool = True, wait: bool = True) -> str:
    """Point this process's Prefect at an API (before Prefect is imported); return its URL.

    ``PREFECT_API_URL`` wins when set; otherwise the local server of ``home`` (started when
    ``start`` and not running). With ``wait=False`` a local server that is still starting is not
    waited for: its URL is known from the moment it is spawned, so the caller can import Prefect
    and get ready while it boots (seconds), then call ``wait_for_prefect`` before using it.
    """
    global _pending
    for key, value in CLIENT_ENV.items():
        os.environ.setdefault(key, value)
    url = os.environ.get("PREFECT_API_URL")
    if url:
        info = read_local_server(home)
        if info is not None and info.get("url") == url:  # handed down: still this home's server
            hold_local_server(home)
        return url
    if "prefect" in sys.modules:
        raise PrefectUnavailable("internal: Prefect was imported before its API was configured")
    hold_local_server(home)  # before reading it: an idle watchdog now keeps it for us
    info = read_local_server(home)
    if not wait and start:
        if not _secured(info):
            spawn_local_server(home)
            info = read_local_server(home)
        if info is None:
            raise PrefectUnavailable(
                f"the local Prefect server exited at start (see {home / 'prefect' / 'server.log'})"
            )
        url = str(info["url"])
        _pending = (home, url)
    else:
        url = str(info["url"]) if info and _secured(info) and _healthy(str(info["url"])) else None
        if url is None:
            if not start:
                raise PrefectUnavailable("no Prefect server is running for this CICD_HOME")
            url = start_local_server(home)
    os.environ["PREFECT_API_URL"] = url
    os.environ.setdefault("PREFECT_API_SSL_CERT_FILE", str(loopback_ca_file(home)))
    # replaces any other auth string: this is the one the local server requires; processes
    # started from here (flow runs of a worker, a daemon's children) inherit it
    os.environ["PREFECT_API_AUTH_STRING"] = local_auth_string(home)
    os.environ.setdefault("PREFECT_HOME", str(home / "prefect"))
    return url


def loopback_ca_file(home: Path) -> Path:
    """A CA file of one certificate for Prefect clients of the local server; made once.

    Every Prefect client (one per flow run, one per task run) builds a TLS context from
    ``PREFECT_API_SSL_CERT_FILE``, by default the whole certifi bundle: ~37 ms of CPU each, about a
    quarter of the cicd server's CPU per job under load. The local server speaks plain HTTP on
    loopback, so that context is never used; loading one certificate costs ~0.8 ms. It is the
    bundle's first, so nothing is trusted that the bundle did not trust. A file set by the user
    is kept (``setdefault``); a Prefect API given by ``PREFECT_API_URL`` is left as it is.
    """
    path = home / "prefect" / "loopback-ca.pem"
    if path.is_file():
        return path
    import certifi  # httpx's dependency, so Prefect's too

    bundle = Path(certifi.where()).read_text(encoding="ascii")
    end_marker = "-----END CERTIFICATE-----"
    end = bundle.index(end_marker) + len(end_marker)
    start = bundle.rindex("-----BEGIN CERTIFICATE-----", 0, end)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    partial.write_text(bundle[start:end] + "\n", encoding="ascii")
    partial.replace(path)  # atomic: runs that start together never read half a file
    return path


def wait_for_prefect() -> None:
    """Wait until the local server ``configure_prefect(wait=False)`` returned is ready.

    Ready means it has answered a first API call: a fresh server takes ~0.4 s over that one
    (after its health route already answers), which would otherwise land on the first run.
    A server that died meanwhile is started again on the same port, since Prefect has read the
    address already; if that port is taken, this raises ``PrefectUnavailable``.
    """
    global _pending
    with _waiting:
        if _pending is None:
            return
        home, url = _pending
        port = urlsplit(url).port
        got = start_local_server(home, port=port)
        if got != url:
            raise PrefectUnavailable(
                f"the local Prefect server came back at {got} instead of {url}; start cicd again"
            )
        hello = urllib.request.Request(f"{url}/hello", headers=auth_header(home))
        with contextlib.suppress(OSError), urllib.request.urlopen(hello, timeout=30):
            pass
        _pending = None
