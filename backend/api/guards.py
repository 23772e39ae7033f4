"""Keeping web pages away from the API: the ``Host`` allow-list and the ``Origin`` check.

A server on loopback is still reachable from every web page the user opens. Two doors are shut:

* DNS rebinding: a page on ``evil.example`` whose name later resolves to 127.0.0.1 reads the API
  as "its own" origin; its requests carry ``Host: evil.example``. ``allowed_hosts`` lists the names
  the server answers to (the bound address, loopback names on loopback, ``CICD_ALLOWED_HOSTS``);
  ``HostGuard`` answers 400 to any other ``Host`` but the address the connection came in on.
* Cross-site requests: a page may POST a multipart form to any address without a preflight (a
  "simple" request). Browsers mark such requests with ``Origin`` (and ``Sec-Fetch-Site``); the
  cicd CLI never sends them. ``from_web_page`` tells the token check to refuse them, token or not.
"""

from __future__ import annotations

import re
import socket
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_BINDS = ("0.0.0.0", "::", "")


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _machine_names() -> set[str]:
    """This machine's names and addresses, for a server bound to every interface."""
    names = {socket.gethostname(), socket.getfqdn()}
    for name in list(names):
        try:
            names.update(str(info[4][0]) for info in socket.getaddrinfo(name, None))
        except OSError:
            continue
    return names


def allowed_hosts(bound: str | None, extra: str | None) -> list[str]:
    """The ``Host`` names a server bound to ``bound`` answers to (``["*"]``: any).

    ``bound`` None (an app not served by ``cicd server``: tests, embedding) counts as loopback.
    ``extra`` is CICD_ALLOWED_HOSTS: names comma- or space-separated, ``*.example.com``, or ``*``.
    """
    names = {name.lower() for name in re.split(r"[,\s]+", extra or "") if name}
    if "*" in names:
        return ["*"]
    host = (bound or "127.0.0.1").strip("[]").lower()
    names.add(host)
    if host in WILDCARD_BINDS:
        names.discard(host)
        names.update(name.lower() for name in _machine_names())
        names.update(LOOPBACK_NAMES)
    elif _is_loopback(host):
        names.update(LOOPBACK_NAMES)
    return sorted(names)


def host_of(value: str | None) -> str | None:
    """The host name of a ``Host`` header value (``[::1]:8765`` -> ``::1``), None if malformed."""
    if not value:
        return None
    try:
        parts = urlsplit(f"//{value}")
        parts.port  # noqa: B018  (raises on a malformed port)
    except ValueError:
        return None
    return parts.hostname


class HostGuard:
    """ASGI middleware: 400 with a one-line JSON detail for a ``Host`` not in ``allowed``."""

    def __init__(self, app: ASGIApp, allowed: list[str]) -> None:
        self.app = app
        self.allowed = [name.lower() for name in allowed]
        self.any = "*" in self.allowed

    def _allows(self, host: str) -> bool:
        return any(
            host == name or (name.startswith("*.") and host.endswith(name[1:]))
            for name in self.allowed
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or refuse it for its ``Host``."""
        if self.any or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        raw = Headers(scope=scope).get("host")
        host = host_of(raw)
        # the address the connection came in on, as a literal, is always this server: a client
        # that names it cannot be a rebinding page (those name a domain), whatever interface
        # of a 0.0.0.0 server it reached
        local = (scope.get("server") or ("",))[0]
        if host is not None and (self._allows(host.lower()) or host == local):
            await self.app(scope, receive, send)
            return
        shown = (raw or "")[:100].encode("ascii", "backslashreplace").decode()
        detail = (
            f"Host '{shown}' is not a name this server answers to: "
            "add it to CICD_ALLOWED_HOSTS on the server"
        )
        await JSONResponse({"detail": detail}, status_code=400)(scope, receive, send)


def from_web_page(headers: Headers, scheme: str) -> str | None:
    """Why a request comes from a web page of another origin, or None when it does not.

    A page of the server's own origin (its ``/docs``) may call it: that page is the server's.
    """
    site = headers.get("sec-fetch-site", "").lower()
    if site in ("cross-site", "same-site"):
        return f"Sec-Fetch-Site: {site}"
    origin = headers.get("origin")
    if origin is None:
        return None
    try:
        parts = urlsplit(origin)
        same = (
            origin != "null"
            and parts.scheme == scheme
            and parts.netloc.lower() == headers.get("host", "").lower()
        )
    except ValueError:
        same = False
    return None if same else f"Origin: {origin[:100]}"
