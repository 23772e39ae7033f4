"""Repository URLs: telling them from paths, taking their credentials out, hiding them.

A URL's user and password are never written down (a mirror's config, the store, a message):
``split_credentials`` gives the URL git should record and what hands the credentials to one
git process for one fetch; ``redact_url`` is the URL as messages and the store show it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote


@dataclass(frozen=True)
class Auth:
    """Credentials of a URL, handed to one git process: config arguments and its environment."""

    config: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)


def split_credentials(url: str) -> tuple[str, Auth]:
    """``url`` without its credentials, and what gives them to git for that host only.

    Only http(s) can use them: the user and password leave the URL, and our credential helper
    (set for this call, scoped to the URL's scheme and host) prints them from the environment of
    that one git process. For other schemes the password is dropped, the user (ssh's login) kept.
    """
    m = _AUTHORITY.match(url)
    if m is None or not m.group("userinfo"):
        return url, Auth()
    scheme, userinfo, host = m.group("scheme"), m.group("userinfo"), m.group("host")
    user, _, password = userinfo.partition(":")
    if scheme.lower() not in ("http", "https"):
        return f"{scheme}://{user + '@' if user else ''}{host}{m.group('rest')}", Auth()
    clean = f"{scheme}://{host}{m.group('rest')}"
    helper = (
        '!f() { test "$1" = get || return 0; '
        'printf "username=%s\\npassword=%s\\n" "$CICD_GIT_USERNAME" "$CICD_GIT_PASSWORD"; }; f'
    )
    return clean, Auth(
        config=("-c", f"credential.{scheme.lower()}://{host}.helper={helper}"),
        env={"CICD_GIT_USERNAME": unquote(user), "CICD_GIT_PASSWORD": unquote(password)},
    )


# scheme://[userinfo@]host[:port]rest; the userinfo ends at the authority's last "@"
_AUTHORITY = re.compile(
    r"^(?P<scheme>[a-z][a-z0-9+.-]*)://(?:(?P<userinfo>[^/?#]*)@)?(?P<host>[^/?#@]*)(?P<rest>.*)$",
    re.I | re.S,
)


def is_url(repo: str) -> bool:
    """Whether git would take ``repo`` for a URL (``scheme://``, or scp-like ``[user@]host:path``).

    A relative path with a colon before any slash reads as a URL too; where local paths are
    allowed, ``resolve_source`` takes an existing such path as a path.
    """
    if "://" in repo:
        return True
    # git's scp-like syntax, ``[user@]host:path``: a colon before any slash.
    colon, slash = repo.find(":"), repo.find("/")
    return colon > 0 and (slash < 0 or colon < slash)


def without_credentials(url: str) -> str:
    """``url`` as git is given it: without a password, and for http(s) without a user either
    (``https://u:p@host/x`` -> ``https://host/x``; ``ssh://git@host/x`` stays as it is).

    What a server's allow-list (``CICD_ALLOWED_REPOS``) is matched against.
    """
    clean, _auth = split_credentials(url)
    return clean


def redact_url(url: str) -> str:
    """The URL without a password or token (``https://user:token@host`` -> ``https://user:***@host``).

    An http(s) URL with a user and no password may carry a token as its user: that is hidden too
    (``https://token@host`` -> ``https://***@host``).
    """
    m = _AUTHORITY.match(url)
    if m is None or not m.group("userinfo"):
        return url
    user, colon, _ = m.group("userinfo").partition(":")
    if not colon and m.group("scheme").lower() not in ("http", "https"):
        return url
    shown = f"{user}:***" if colon else "***"
    return f"{m.group('scheme')}://{shown}@{m.group('host')}{m.group('rest')}"
