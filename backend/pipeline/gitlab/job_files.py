"""A GitLab job's ``cache`` and ``artifacts``: the files it keeps, read and checked.

GitLab's limits: at most 4 caches, ``cache:key:files`` of one or two paths, a cache key
without ``/`` (nor ``.``/``..``, nor its URL-encoded form); ``artifacts:expire_in`` a
duration or ``never``. ``unprotect``, ``expose_as``, ``public`` and ``access`` are checked
and dropped: they concern a GitLab server's protected branches and merge request pages. These,
``name`` and ``expire_in`` (kept in the model, but nothing uses them) are noted in
``Pipeline.ignored``.
"""

from __future__ import annotations

from collections.abc import Callable

from backend.pipeline.gitlab.duration import parse_duration
from backend.pipeline.gitlab.ignored import NO_EFFECT
from backend.pipeline.gitlab.spec import KeywordReader
from backend.pipeline.gitlab.variables import scalar_text
from backend.pipeline.loader import Map, Node, Scalar, Seq, describe
from backend.pipeline.model import Artifacts, Cache

MAX_CACHES = 4
CACHE_KEYS = ("key", "paths", "policy", "when", "untracked", "unprotect", "fallback_keys")
ARTIFACT_KEYS = (
    "paths",
    "exclude",
    "expose_as",
    "name",
    "untracked",
    "when",
    "expire_in",
    "reports",
    "public",
    "access",
)


class FilesReader(KeywordReader):
    """Reads ``cache`` and ``artifacts`` into the job's spec."""

    def no_effect(self, key: str) -> None:
        self.ignore(key, NO_EFFECT[key])

    def k_cache(self, node: Node) -> None:
        entries = node.items if isinstance(node, Seq) else [node]
        if len(entries) > MAX_CACHES:
            self.add(node, f"'cache' lists {len(entries)} caches; the limit is {MAX_CACHES}")
        for entry in entries:
            cache = self.cache(entry)
            if cache is not None:
                self.spec.cache.append(cache)

    def cache(self, node: Node) -> Cache | None:
        entry = self.mapping(node, "'cache'", CACHE_KEYS)
        if entry is None:
            return None
        fields: dict[str, object] = {}
        key = entry.get("key")
        if isinstance(key, Scalar) and key.value is not None and not isinstance(key.value, bool):
            text = scalar_text(key)
            if "/" in text or text.strip(".") == "" or "%2f" in text.lower():
                self.add(key, "'cache:key' must not contain '/' nor be '.' or '..'")
            fields["key"] = text
        elif isinstance(key, Map):
            self.mapping(key, "'cache:key'", ("files", "prefix"))
            files = key.get("files")
            names = self.strings(files, "'cache:key:files'") if files is not None else None
            if names is None or not 1 <= len(names) <= 2:
                if names is not None or files is None:
                    self.add(files or key, "'cache:key:files' must list one or two files")
            else:
                fields["key_files"] = names
            if key.get("prefix") is not None:
                fields["key_prefix"] = self.string(key.get("prefix"), "'cache:key:prefix'")  # type: ignore[arg-type]
        elif key is not None:
            self.add(key, f"'cache:key' must be a string or {{files, prefix}}, not {describe(key)}")
        readers: dict[str, tuple[Callable[[Node], object], tuple[str, ...] | None]] = {
            "paths": (lambda n: self.strings(n, "'cache:paths'"), None),
            "fallback_keys": (lambda n: self.strings(n, "'cache:fallback_keys'"), None),
            "untracked": (lambda n: self.boolean(n, "'cache:untracked'"), None),
            "unprotect": (lambda n: self.boolean(n, "'cache:unprotect'"), None),
            "policy": (
                lambda n: n.value if isinstance(n, Scalar) else None,
                ("pull", "push", "pull-push"),
            ),
            "when": (
                lambda n: n.value if isinstance(n, Scalar) else None,
                ("on_success", "on_failure", "always"),
            ),
        }
        for name, (read, choices) in readers.items():
            value = entry.get(name)
            if value is None or (isinstance(value, Scalar) and value.value is None):
                continue
            result = read(value)
            if choices is not None and result not in choices:
                self.add(
                    value,
                    f"'cache:{name}' must be one of {', '.join(choices)}, not {describe(value)}",
                )
                continue
            if name == "unprotect":
                self.no_effect("cache:unprotect")
            elif result is not None:
                fields[name] = result
        try:
            return Cache(**fields)  # type: ignore[arg-type]
        except ValueError:
            return None  # a field already reported

    def k_artifacts(self, node: Node) -> None:
        entry = self.mapping(node, "'artifacts'", ARTIFACT_KEYS)
        if entry is None:
            return
        options: dict[str, object] = {}
        for name, value in entry.entries:
            key = name.value
            if key == "paths":
                self.spec.artifacts = self.strings(value, "'artifacts:paths'") or []
            elif key == "exclude":
                options["exclude"] = self.strings(value, "'artifacts:exclude'") or []
            elif key in ("name", "expose_as"):
                text = self.string(value, f"'artifacts:{key}'")
                if key == "name":
                    options["name"] = text
                else:
                    self.no_effect(f"artifacts:{key}")
            elif key == "untracked":
                flag = self.boolean(value, "'artifacts:untracked'")
                if flag is not None:
                    options["untracked"] = flag
            elif key == "public":
                self.boolean(value, "'artifacts:public'")
                self.no_effect("artifacts:public")
            elif key == "when":
                if isinstance(value, Scalar) and value.value in (
                    "on_success",
                    "on_failure",
                    "always",
                ):
                    options["when"] = value.value
                else:
                    self.add(
                        value,
                        "'artifacts:when' must be one of on_success, on_failure, always, "
                        f"not {describe(value)}",
                    )
            elif key == "expire_in":
                text = (
                    scalar_text(value)
                    if isinstance(value, Scalar) and value.value is not None
                    else None
                )
                if text is None or (text != "never" and parse_duration(text) is None):
                    self.add(
                        value,
                        "'artifacts:expire_in' must be a duration or 'never', "
                        f"not {describe(value)}",
                    )
                else:
                    options["expire_in"] = text
            elif key == "reports":
                options["reports"] = self.reports(value)
            elif key == "access":
                if not (isinstance(value, Scalar) and value.value in ("all", "developer", "none")):
                    self.add(
                        value,
                        f"'artifacts:access' must be all, developer or none, not {describe(value)}",
                    )
                self.no_effect("artifacts:access")
        self.spec.artifacts_options = Artifacts(**options)  # type: ignore[arg-type]

    def reports(self, node: Node) -> dict[str, list[str]]:
        if not isinstance(node, Map):
            self.add(node, f"'artifacts:reports' must be a mapping, not {describe(node)}")
            return {}
        result = {}
        for key, value in node.entries:
            if isinstance(value, Map):  # coverage_report: {coverage_format, path}
                path = value.get("path")
                paths = self.strings(path, f"'artifacts:reports:{key.text}:path'") if path else None
            else:
                paths = self.strings(value, f"'artifacts:reports:{key.text}'")
            if paths is not None:
                result[str(key.value)] = paths
        return result
