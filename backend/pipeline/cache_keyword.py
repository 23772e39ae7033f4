"""The native format's ``cache:`` (docs/pipeline-format.md, ``cache``): GitLab's keyword, read.

One mapping or a list of at most four: ``key`` (a string, or ``{files: [1-2 paths], prefix}``),
``paths``, ``policy`` (pull, push, pull-push), ``when`` (on_success, on_failure, always),
``untracked`` and ``fallback_keys``. A key is refused where GitLab refuses it: with ``/`` (or
``%2F``), or made only of dots. ``$VARIABLES`` in keys are expanded when the job runs.
"""

from __future__ import annotations

from collections.abc import Callable

from backend.pipeline.loader import Map, Node, Scalar, Seq, describe
from backend.pipeline.model import Cache

MAX_CACHES = 4  # GitLab's limit per job
CACHE_KEYS = ("key", "paths", "policy", "when", "untracked", "fallback_keys")
CHOICES = {
    "policy": ("pull", "push", "pull-push"),
    "when": ("on_success", "on_failure", "always"),
}

Add = Callable[[Node, str], None]


def read_cache(node: Node, label: str, add: Add) -> list[Cache]:
    """The caches ``node`` (a job's ``cache:``) describes; each problem goes to ``add``."""
    entries = node.items if isinstance(node, Seq) else [node]
    if len(entries) > MAX_CACHES:
        add(node, f"{label}: 'cache' lists {len(entries)} caches; the limit is {MAX_CACHES}")
    caches = [_one(entry, f"{label}: 'cache", add) for entry in entries[:MAX_CACHES]]
    return [cache for cache in caches if cache is not None]


def _one(node: Node, what: str, add: Add) -> Cache | None:
    if not isinstance(node, Map):
        add(node, f"{what}' entries must be mappings, not {describe(node)}")
        return None
    problems = 0

    def bad(at: Node, message: str) -> None:
        nonlocal problems
        problems += 1
        add(at, message)

    for key, _ in node.entries:
        if key.value not in CACHE_KEYS:
            bad(key, f"unknown key '{key.text}' in {what}' (allowed: {', '.join(CACHE_KEYS)})")
    fields: dict[str, object] = {}
    for key, value in node.entries:
        name = key.value
        if name == "key":
            fields.update(_key(value, what, bad))
        elif name in ("paths", "fallback_keys"):
            found = _strings(value, f"{what}:{name}'", bad)
            if found is not None:
                fields[name] = found
        elif name in CHOICES:
            if isinstance(value, Scalar) and value.value in CHOICES[name]:
                fields[name] = value.value
            else:
                bad(
                    value,
                    f"{what}:{name}' must be one of {', '.join(CHOICES[name])}, "
                    f"not {describe(value)}",
                )
        elif name == "untracked":
            if isinstance(value, Scalar) and isinstance(value.value, bool):
                fields["untracked"] = value.value
            else:
                bad(value, f"{what}:untracked' must be true or false, not {describe(value)}")
    return None if problems else Cache(**fields)  # type: ignore[arg-type]


def _key(node: Node, what: str, bad: Add) -> dict[str, object]:
    if isinstance(node, Scalar) and _key_scalar(node.value):
        text = node.value if isinstance(node.value, str) else node.text
        lowered = text.lower()
        if "/" in text or "%2f" in lowered or lowered.replace("%2e", ".").strip(".") == "":
            bad(node, f"{what}:key' must not contain '/' nor be made only of dots, not {text!r}")
        return {"key": text}
    if not isinstance(node, Map):
        bad(node, f"{what}:key' must be a string or {{files, prefix}}, not {describe(node)}")
        return {}
    out: dict[str, object] = {}
    for key, entry in node.entries:
        if key.value == "files":
            files = _strings(entry, f"{what}:key:files'", bad)
            if files is not None and not 1 <= len(files) <= 2:
                bad(entry, f"{what}:key:files' must list one or two files")
            elif files is not None:
                out["key_files"] = files
        elif key.value == "prefix":
            if isinstance(entry, Scalar) and isinstance(entry.value, str) and entry.value:
                out["key_prefix"] = entry.value
            else:
                bad(entry, f"{what}:key:prefix' must be a string, not {describe(entry)}")
        else:
            bad(key, f"unknown key '{key.text}' in {what}:key' (allowed: files, prefix)")
    if "key_files" not in out and node.get("files") is None:
        bad(node, f"{what}:key' as a mapping needs 'files'")
    return out


def _key_scalar(value: object) -> bool:
    """A string or integer key with a non-blank text (a boolean is no key)."""
    return isinstance(value, str | int) and not isinstance(value, bool) and bool(str(value).strip())


def _strings(node: Node, what: str, bad: Add) -> list[str] | None:
    if isinstance(node, Seq):
        found = [
            item.value
            for item in node.items
            if isinstance(item, Scalar) and isinstance(item.value, str) and item.value.strip()
        ]
        if len(found) == len(node.items):
            return found
    bad(node, f"{what} must be a list of non-empty strings, not {describe(node)}")
    return None
