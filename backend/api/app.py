"""The FastAPI application: routers under ``/api/v1``, Host and token checks, one-line errors."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.api.deps import require_token
from backend.api.guards import HostGuard, allowed_hosts
from backend.api.launcher import RunLauncher
from backend.api.routes import artifacts, health, hooks, logs, pipelines, runs, workers
from backend.api.streams import Followers
from backend.errors import (
    CicdError,
    NotFound,
    PipelineError,
    RepoError,
    RunnerError,
    ServerBusy,
    ServerError,
    StoreError,
    UsageError,
)
from backend.events import EventHub
from backend.pool import Gone, PoolDispatch, Reaper
from backend.service import Service
from backend.settings import Settings

API_PREFIX = "/api/v1"
log = logging.getLogger("cicd.server")

# The error tree as HTTP statuses; the first class that matches wins.
STATUS_OF: list[tuple[type[CicdError], int]] = [
    (NotFound, 404),
    (Gone, 409),
    (ServerBusy, 429),
    (UsageError, 400),
    (PipelineError, 422),
    (RepoError, 422),
    (RunnerError, 503),
    (StoreError, 503),
    (ServerError, 502),
]


def package_version() -> str:
    """The installed cicd package's version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cicd")
    except PackageNotFoundError:
        return "0+unknown"


def one_line(text: str) -> str:
    """Several lines joined into one (``a; b``)."""
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def create_app(
    service: Service,
    settings: Settings,
    *,
    hub: EventHub | None = None,
    prefect_url: str | None = None,
    host: str | None = None,
    local_paths: bool = False,
    dispatch: PoolDispatch | None = None,
) -> FastAPI:
    """The API over ``service``: history, runs, logs, artifacts, health.

    ``prefect_url`` is the Prefect API the health check pings (default: ``PREFECT_API_URL``).
    ``host`` is the address the server is bound to: requests naming another ``Host`` (DNS
    rebinding) are refused unless ``settings.allowed_hosts`` lists it; None counts as loopback.
    Runs still executing or queued when the app shuts down are canceled and awaited.
    ``local_paths`` (the local daemon only) lets a submission name a repository by its path.
    With ``dispatch`` (``cicd server --pool``) runs go to the pool's workers (backend/pool.py),
    whose leases a reaper checks while the app serves.
    """
    launcher = RunLauncher(
        service, hub or EventHub(), settings, local_paths=local_paths, dispatch=dispatch
    )
    reaper = (
        Reaper(service, settings.worker_lease, launcher.finished_lapsed, dispatch.flow_run_of)
        if dispatch is not None
        else None
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if reaper is not None:
            reaper.start()
        yield
        import anyio.to_thread

        if reaper is not None:
            reaper.stop()
        await anyio.to_thread.run_sync(launcher.shutdown)
        app.state.prefect_probe.close()

    app = FastAPI(
        title="cicd",
        version=package_version(),
        summary="Run pipelines from .pipelines/*.yaml, each job in its own Docker container.",
        description=(
            "The cicd backend: submit runs, follow their events and job logs, read the history "
            "at the same levels as `cicd report` (pipelines, runs, stages, jobs), cancel runs, "
            "fetch artifacts. When the server has a token (CICD_API_TOKEN), every route but "
            "/health and the webhooks (/hooks/*, signed with CICD_WEBHOOK_SECRET) needs "
            "`Authorization: Bearer <token>`. Web pages of other origins are "
            "refused (401), and so are Host names the server does not answer to (400). "
            "Errors are `{\"detail\": \"<one line>\"}`."
        ),
        openapi_url="/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.service = service
    # the health route's Prefect probe: one client, since making one costs ~40 ms of CPU (its
    # TLS context) and every `cicd run` probes the local daemon before submitting
    app.state.prefect_probe = httpx.Client(timeout=2.0)
    app.state.settings = settings
    app.state.launcher = launcher
    app.state.hub = launcher.hub
    app.state.prefect_url = prefect_url or os.environ.get("PREFECT_API_URL")
    app.state.followers = Followers(settings.max_followers)

    app.include_router(health.router, prefix=API_PREFIX)
    # webhooks carry no token: their signature is the credential (backend/webhooks.py)
    app.include_router(hooks.router, prefix=API_PREFIX)
    protected = [Depends(require_token)]
    # logs before runs: `/jobs/{job:path}/log` must be tried before `/jobs/{job:path}`
    for module in (pipelines, logs, runs, artifacts, workers):
        app.include_router(module.router, prefix=API_PREFIX, dependencies=protected)
    _add_error_handlers(app)
    app.add_middleware(HostGuard, allowed=allowed_hosts(host, settings.allowed_hosts))
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CicdError)
    async def cicd_error(request: Request, exc: CicdError) -> JSONResponse:
        code = next((code for cls, code in STATUS_OF if isinstance(exc, cls)), 500)
        headers = {"Retry-After": "5"} if code == 429 else None
        return JSONResponse(
            {"detail": one_line(str(exc)) or type(exc).__name__}, status_code=code, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
            problems.append(f"{where}: {error.get('msg', 'invalid')}" if where else error["msg"])
        return JSONResponse({"detail": one_line("\n".join(problems))}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"detail": one_line(str(exc.detail))}, status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"detail": one_line(f"internal error: {type(exc).__name__}: {exc}")}, status_code=500
        )
