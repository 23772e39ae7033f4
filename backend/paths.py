"""Where names from a pipeline file land on disk: never as given, always inside their folder.

Job, stage and pipeline names are free text (GitLab's ``deploy/staging``, ``build: [a, b]``,
``test 1/3``). A path built from one directly could climb out of ``CICD_HOME`` (``../x``,
``/tmp/x``) or make two jobs share a file (``a/b`` and ``a b`` slug alike). So every file or
folder the backend names after one is ``safe_child(root, name)``: a readable slug of the name
plus a short SHA-256 of the *real* name, checked to resolve inside ``root``.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from backend.errors import UnsafePath

SLUG_LENGTH = 40  # readable part; the hash keeps the whole unique
HASH_LENGTH = 12  # hex digits of SHA-256: 48 bits, plenty for the names of one run

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def slug(name: str) -> str:
    """``name`` reduced to letters, digits, ``_`` and ``-`` (runs of others become one ``_``).

    Dots are replaced too, so a slug is never ``.``, ``..`` or a hidden file's name.
    """
    return _UNSAFE.sub("_", name)[:SLUG_LENGTH].strip("_") or "_"


def safe_name(name: str, suffix: str = "") -> str:
    """One path segment for ``name``: ``<slug>-<hash><suffix>``; distinct names never share one.

    The hash is of the exact name, so ``a/b`` and ``a b`` (both slug ``a_b``) differ, and names
    that differ only in case differ on a case-insensitive file system too.
    """
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_LENGTH]
    return f"{slug(name)}-{digest}{suffix}"


def safe_child(root: Path, name: str, suffix: str = "") -> Path:
    """The path under ``root`` for ``name`` (see ``safe_name``), resolved.

    Raises ``UnsafePath`` if it would not resolve to a direct child of ``root`` (a symlink
    planted where the child goes, say), so a caller can never write outside ``root``.
    """
    base = root.resolve()
    child = (base / safe_name(name, suffix)).resolve()
    if child.parent != base:
        raise UnsafePath(f"path for {name!r} resolves outside {base}")
    return child
