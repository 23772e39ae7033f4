"""``/health``: whether the server, its history store and its Prefect API answer (no token)."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from backend.api.deps import get_service
from backend.api.schemas import CheckPublic, HealthPublic
from backend.service import Service

router = APIRouter(tags=["health"])


def _store(service: Service) -> CheckPublic:
    try:
        service.store.open_runs()
    except Exception as exc:
        return CheckPublic(ok=False, detail=str(exc).splitlines()[0] if str(exc) else repr(exc))
    return CheckPublic(ok=True)


def _prefect(request: Request, url: str | None) -> CheckPublic:
    if not url:
        return CheckPublic(ok=False, detail="no Prefect API configured (PREFECT_API_URL)")
    try:
        reply = request.app.state.prefect_probe.get(f"{url.rstrip('/')}/health")
    except httpx.HTTPError as exc:
        return CheckPublic(ok=False, detail=f"cannot reach {url}: {exc}")
    if reply.status_code != 200:
        return CheckPublic(ok=False, detail=f"{url} answered HTTP {reply.status_code}")
    return CheckPublic(ok=True)


@router.get(
    "/health",
    response_model=HealthPublic,
    responses={503: {"model": HealthPublic, "description": "The store or Prefect does not answer"}},
)
def get_health(request: Request, service: Service = Depends(get_service)) -> JSONResponse:
    """Health of the server: 200 when the history store and the Prefect API both answer, else 503.

    Needs no token, so load balancers and `cicd` clients can probe it.
    """
    url = request.app.state.prefect_url
    store, prefect = _store(service), _prefect(request, url)
    ok = store.ok and prefect.ok
    body = HealthPublic(
        status="ok" if ok else "degraded", version=request.app.version, store=store,
        prefect=prefect, prefect_url=url,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ok else 503)
