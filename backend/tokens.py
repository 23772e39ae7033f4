"""Secrets cicd generates for its own servers, kept in owner-only files under ``CICD_HOME``.

``cicd server`` without ``CICD_API_TOKEN`` still requires a token: it generates one into
``CICD_HOME/server/token`` and the local CLI reads it from there when it talks to a server on
loopback. The local Prefect server's auth string is kept the same way (flows/prefect_api.py).

A secret file is made once and then reused, so several processes of one ``CICD_HOME`` agree on
it: it is written to a private temporary file (``O_CREAT | O_EXCL``, 0600) and linked into place,
so a reader never sees half a secret and, of two processes racing, the first one's wins.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import stat
from pathlib import Path
from urllib.parse import urlsplit

from backend.settings import Settings

TOKEN_BYTES = 32


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def server_token_path(home: Path) -> Path:
    """Where the token a ``cicd server`` of ``home`` generated is kept."""
    return home / "server" / "token"


def read_secret(path: Path) -> str | None:
    """The secret in ``path``, or None when it is missing, empty or readable by others.

    A file others can read (or that another user owns) is not trusted: it may have been planted
    or seen, and a new secret replaces it.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd) as handle:
        info = os.fstat(handle.fileno())
        if info.st_uid != os.getuid() or info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            return None
        value = handle.read().strip()
    return value or None


def secret_file(path: Path, prefix: str = "") -> str:
    """The secret kept in ``path`` (0600, folder 0700), made (``prefix`` + random) if none is."""
    existing = read_secret(path)
    if existing is not None:
        return existing
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(prefix + secrets.token_urlsafe(TOKEN_BYTES) + "\n")
    try:
        with contextlib.suppress(FileNotFoundError):
            if read_secret(path) is None:  # an untrusted file: replace it
                path.unlink()
        try:
            os.link(partial, path)  # fails if another process made it meanwhile: theirs wins
        except FileExistsError:
            pass
    finally:
        partial.unlink()
    value = read_secret(path)
    if value is None:
        raise PermissionError(f"{path}: cannot keep a secret there (not owner-only)")
    return value


def server_token(home: Path) -> str:
    """The token of ``home``'s ``cicd server``: the one kept there, or a new one."""
    return secret_file(server_token_path(home))


def client_token(settings: Settings, url: str) -> str | None:
    """The token a CLI sends to the server at ``url``.

    ``CICD_API_TOKEN`` when set; otherwise, for a server on this machine (loopback), the token a
    ``cicd server`` of the same ``CICD_HOME`` generated, if there is one.
    """
    if settings.api_token:
        return settings.api_token
    host = urlsplit(url if "//" in url else f"//{url}").hostname or ""
    if not is_loopback(host):
        return None
    return read_secret(server_token_path(settings.home))
