"""Which repositories a team server takes without a bundle: URLs of its allow-list, never paths.

A ``cicd server`` runs git on what it is given, as its own user. A path of its disk could be a
repository a job prepared in its workspace, and a URL could be anything the server's network
reaches; so a run arrives as a git bundle, or names a URL the operator allowed with
``CICD_ALLOWED_REPOS`` (globs, comma- or space-separated, matched with ``fnmatch`` against the
URL without its password, and for http(s) without its user: ``urls.without_credentials``).
Local paths are for the local daemon only, which acts for the user who started it.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from urllib.parse import unquote

from backend.errors import RepoError
from backend.source.urls import is_url, redact_url, without_credentials

BUNDLE_HINT = "send a bundle of the commit, as cicd run --server does"


def allowed_patterns(setting: str | None) -> list[str]:
    """The globs of ``CICD_ALLOWED_REPOS`` (comma- or space-separated)."""
    return [part for part in re.split(r"[,\s]+", setting or "") if part]


def check_allowed(repo: str, setting: str | None) -> None:
    """Raise a one-line RepoError unless a team server may fetch ``repo`` itself."""
    if not is_url(repo):
        raise RepoError(
            f"{repo}: this server does not read repositories on its disk; {BUNDLE_HINT}, "
            "or name a repository URL it allows (CICD_ALLOWED_REPOS)"
        )
    patterns = allowed_patterns(setting)
    label = redact_url(repo)
    if not patterns:
        raise RepoError(
            f"{label}: this server takes runs as git bundles only (CICD_ALLOWED_REPOS is "
            f"empty); {BUNDLE_HINT}"
        )
    bare = without_credentials(repo)
    # a glob's * also matches "..": file:///srv/git/* must not reach /srv/git/../../home/x
    if ".." in re.split(r"[/:\\]", unquote(bare)):
        raise RepoError(f"{label}: a repository URL may not name a parent folder ('..')")
    if not any(fnmatchcase(bare, pattern) for pattern in patterns):
        raise RepoError(
            f"{label}: not among the repositories this server may fetch (CICD_ALLOWED_REPOS); "
            f"{BUNDLE_HINT}"
        )
