"""Dependencies of the routes: the bearer-token check and the objects the app was built with."""

from __future__ import annotations

import hmac

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from backend.api.guards import from_web_page
from backend.api.launcher import RunLauncher
from backend.service import Service
from backend.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="the server's CICD_API_TOKEN")


def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


def get_service(request: Request) -> Service:
    """The service every route calls."""
    service: Service = request.app.state.service
    return service


def get_launcher(request: Request) -> RunLauncher:
    """The launcher that submits runs and executes them in the background."""
    launcher: RunLauncher = request.app.state.launcher
    return launcher


def require_token(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    settings: Settings = Depends(get_settings),
) -> None:
    """Refuse the request (401) unless it carries the configured token; no token: open API.

    A request a web page of another origin sends is refused whatever it carries, token or not:
    the API is for the cicd CLI and scripts, and a page must never drive it (a cross-site form
    POST needs no preflight; a server without a token would otherwise start its runs).
    """
    page = from_web_page(request.headers, request.url.scheme)
    if page is not None:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail=f"requests from web pages are refused ({page}): call the API from the cicd "
            "CLI or a script, with 'Authorization: Bearer <CICD_API_TOKEN>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    expected = settings.api_token
    if not expected:
        return
    given = credentials.credentials if credentials is not None else ""
    if credentials is None or credentials.scheme.lower() != "bearer" or not hmac.compare_digest(
        given.encode(), expected.encode()
    ):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or wrong API token: send 'Authorization: Bearer <CICD_API_TOKEN>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
