"""``cicd server``: serve the backend API (and a Prefect server with its UI) for a team."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from backend.settings import Settings
from backend.tokens import is_loopback, server_token, server_token_path
from cicd_cli.errors import EXIT_USAGE, abort
from cicd_cli.serving import HttpLimits

GRACEFUL_SECONDS = 5  # open streams get this long at shutdown before they are cut


def _bind(host: str, port: int, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        abort(f"cannot listen on {host}:{port}: {exc.strerror or exc}", EXIT_USAGE)
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def server(
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Address to listen on. Anything beyond loopback needs CICD_API_TOKEN.",
    ),
    port: int = typer.Option(
        8765, "--port", min=0, max=65535, help="Port of the API (0: any free one)."
    ),
    state_file: Path | None = typer.Option(
        None,
        "--state-file",
        hidden=True,
        help="Once serving, record {pid, url, token} here (0600); removed at exit. "
        "Used by the local daemon (cicd_cli/daemon.py).",
    ),
    idle_timeout: float = typer.Option(
        0,
        "--idle-timeout",
        hidden=True,
        min=0,
        help="Exit after this many seconds without requests or running runs (0: never).",
    ),
    head_timeout: float = typer.Option(
        HttpLimits.head_timeout,
        "--head-timeout",
        envvar="CICD_HEAD_TIMEOUT",
        min=0.1,
        help="Close a connection that has not sent a complete request head within this many "
        "seconds (CICD_HEAD_TIMEOUT).",
    ),
    keep_alive: int = typer.Option(
        HttpLimits.keep_alive,
        "--keep-alive",
        envvar="CICD_KEEP_ALIVE",
        min=1,
        help="Close an idle keep-alive connection after this many seconds (CICD_KEEP_ALIVE).",
    ),
    pool: str | None = typer.Option(
        None,
        "--pool",
        envvar="CICD_POOL",
        help="Hand submitted runs to the workers of this Prefect work pool (`cicd worker "
        "--pool NAME` on each machine) instead of executing them here (CICD_POOL).",
    ),
    max_connections: int = typer.Option(
        HttpLimits.max_connections,
        "--max-connections",
        envvar="CICD_MAX_CONNECTIONS",
        min=1,
        help="Answer 503 to requests beyond this many open connections (CICD_MAX_CONNECTIONS).",
    ),
) -> None:
    """Serve the cicd API for `cicd run --server URL` and the history commands.

    The API is under /api/v1 (OpenAPI at /openapi.json, docs at /api/v1/docs). Unless
    PREFECT_API_URL points at a Prefect server, a local one is started (or reused) under
    CICD_HOME, and its UI shows every run live. At start-up, runs that a stopped or killed
    server left RUNNING are settled and their containers removed.

    Every request but /api/v1/health needs `Authorization: Bearer <token>`. The token is
    CICD_API_TOKEN; without it the server only listens on loopback and generates one into
    CICD_HOME/server/token (0600), which cicd commands of the same CICD_HOME read when they
    talk to a server on this machine. Ctrl-C stops it: runs still going are canceled first.
    """
    settings = Settings()
    if not is_loopback(host) and not settings.api_token:
        # a generated token would have to be fetched from this machine's CICD_HOME by every
        # remote client: beyond loopback the operator chooses (and hands out) the token
        abort(
            f"refusing to listen on {host} without an API token: set CICD_API_TOKEN "
            "(or listen on 127.0.0.1)",
            EXIT_USAGE,
        )
    limits = HttpLimits(
        head_timeout=head_timeout, keep_alive=keep_alive, max_connections=max_connections
    )
    sock = _bind(host, port, limits.backlog)
    generated = not settings.api_token
    if generated:
        settings.ensure_home()
        try:
            token = server_token(settings.home)
        except OSError as exc:
            abort(f"cannot keep the server's token under {settings.home}: {exc}", EXIT_USAGE)
        settings = settings.model_copy(update={"api_token": token})
    console = Console(highlight=False, markup=False, soft_wrap=True)

    from backend.engines import docker_runner, import_flow_soon, prepare_prefect, wait_for_prefect

    # Before anything imports Prefect. A local Prefect server takes seconds to boot: the imports
    # and the store's start-up below happen meanwhile, and we serve without waiting for it: a
    # run that comes first starts its first jobs meanwhile (backend.headstart) and waits for it
    # before its flow. The flow (Prefect, ~2 s) is imported while we serve (import_flow_soon),
    # rather than before or in the first run.
    prefect_url = prepare_prefect(settings.home, import_flow=False)

    from backend.api import API_PREFIX, create_app
    from backend.service import Service
    from cicd_cli.serving import uvicorn_config

    runner = docker_runner()
    service = Service(settings, mode="server", runner=runner)
    try:
        runner.check()
    except Exception as exc:
        console.print(f"warning: {exc}: runs will fail until Docker answers", style="yellow")
    settled = service.reconcile()  # and removes their containers and workspaces
    dispatch = None
    if pool:
        from backend.pool import PoolDispatch

        wait_for_prefect()  # the pool and its deployment are made in Prefect before serving

        dispatch = PoolDispatch(pool, service)
        try:
            settled += dispatch.prepare()
        except Exception as exc:
            abort(f"cannot prepare work pool '{pool}' in Prefect: {exc}", EXIT_USAGE)
    if settled:
        console.print(
            f"settled {len(settled)} run(s) a stopped server left running: " + ", ".join(settled)
        )

    bound_port = sock.getsockname()[1]
    shown = socket.gethostname() if host in ("0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    console.print(
        f"cicd API    http://{shown}:{bound_port}{API_PREFIX}  "
        f"(docs {API_PREFIX}/docs, OpenAPI /openapi.json)"
    )
    console.print(f"Prefect UI  {prefect_url.removesuffix('/').removesuffix('/api')}")
    if generated:
        console.print(f"token       required, generated in {server_token_path(settings.home)}")
    else:
        console.print("token       required (CICD_API_TOKEN)")
    console.print(f"data        {settings.home}")
    if pool:
        console.print(f"runs        handed to work pool '{pool}' (cicd worker --pool {pool})")

    # the local daemon (started with --state-file, on loopback) acts for its user: it may read
    # repositories by path; any other server takes bundles or allowed URLs only
    local_paths = state_file is not None and is_loopback(host)
    app = create_app(
        service, settings, prefect_url=prefect_url, host=host, local_paths=local_paths,
        dispatch=dispatch,
    )
    from cicd_cli.daemon import DaemonWatch

    watch = DaemonWatch(
        state_file=state_file,
        idle_timeout=idle_timeout,
        url=f"http://{shown}:{bound_port}",
        token=settings.api_token,
        busy=lambda: bool(app.state.launcher.running()),
    )
    config = uvicorn_config(
        watch.wrap(app),
        limits,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
    )
    uvicorn_server = _draining_server(config, app.state.launcher.shutdown)
    watch.start(uvicorn_server)
    if not pool:  # (a pool's dispatch imported Prefect already)
        import_flow_soon()
    try:
        uvicorn_server.run(sockets=[sock])
    finally:
        watch.stop()
        sock.close()


def _draining_server(config: Any, drain: Callable[[], None]) -> Any:
    """A uvicorn server that settles the runs still going before it closes its connections.

    On Ctrl-C or SIGTERM it first runs ``drain`` (cancel those runs, wait until they settle), so
    clients following a run see it end CANCELED instead of a dropped connection; then it shuts
    down as usual. A second signal exits at once.
    """
    import uvicorn

    class DrainingServer(uvicorn.Server):
        draining = False

        def handle_exit(self, sig: int, frame: Any) -> None:
            if self.draining or self.should_exit:
                super().handle_exit(sig, frame)
                return
            self.draining = True

            def drain_then_exit() -> None:
                try:
                    drain()
                finally:
                    super(DrainingServer, self).handle_exit(sig, frame)

            threading.Thread(target=drain_then_exit, name="cicd-drain", daemon=True).start()

    return DrainingServer(config)
