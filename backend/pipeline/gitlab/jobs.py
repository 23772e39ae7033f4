"""One GitLab job's keywords, each checked for its type at its position: a ``JobSpec``.

    read_job(name, key, node, inherited, problems) -> JobSpec

What a keyword *means* for this run (rules, variables, needs across jobs) is decided in
``front.py``; here each value is read as GitLab's ``Entry::Job`` and ``Entry::Processable``
accept it (docs.gitlab.com/ci/yaml), with GitLab's limits: ``retry`` 0..2, ``start_in`` at
most a week, ``timeout`` at most a month, ``needs`` 50 entries, ``cache`` 4 entries, ``cache:
key: files`` 1 or 2 paths. Keywords with no local meaning are accepted, checked for their
shape, and named in ``JobSpec.ignored`` with why (``IGNORED``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from backend.errors import Problem
from backend.pipeline.gitlab.duration import parse_duration
from backend.pipeline.gitlab.rules import Policy, Rule, read_policy, read_rules, strings
from backend.pipeline.gitlab.tree import new_map, problem_at
from backend.pipeline.gitlab.variables import Variable, read_variables, scalar_text
from backend.pipeline.loader import Map, Node, Scalar, Seq, describe
from backend.pipeline.model import Artifacts, Cache, Service
from backend.pipeline.validate import suggest

WHEN = ("on_success", "on_failure", "always", "manual", "delayed", "never")
RETRY_WHEN = (
    "always",
    "unknown_failure",
    "script_failure",
    "api_failure",
    "stuck_or_timeout_failure",
    "runner_system_failure",
    "runner_unsupported",
    "stale_schedule",
    "job_execution_timeout",
    "archived_failure",
    "unmet_prerequisites",
    "scheduler_failure",
    "data_integrity_failure",
)
MAX_RETRY = 2
MAX_START_IN = 7 * 86400  # GitLab: start_in "should be a duration of 1 week or less"
MAX_TIMEOUT = 30 * 86400  # Project::MAX_BUILD_TIMEOUT: one month
MAX_NEEDS = 50  # ci_needs_size_limit's default
MAX_CACHES = 4
IGNORED = {
    "tags": "runner selection has no local meaning",
    "environment": "deployments are tracked by a GitLab server; the name is kept, nothing more",
    "coverage": "coverage is not parsed from job logs",
    "resource_group": "no lock across pipelines; jobs of one run follow needs and stages only",
    "release": "creating a release needs a GitLab server",
    "pages": "publishing GitLab Pages needs a GitLab server",
    "publish": "publishing GitLab Pages needs a GitLab server",
    "id_tokens": "OIDC ID tokens are issued by a GitLab server",
    "secrets": "external secrets are fetched by a GitLab server",
    "hooks": "runner hooks have no local meaning (cicd checks the repository out itself)",
    "identity": "identity federation needs a GitLab server",
    "dast_configuration": "DAST site and scanner profiles live on a GitLab server",
    "manual_confirmation": "manual jobs start only when asked (--manual); nothing to confirm",
    "trigger": "downstream pipelines need a GitLab server; trigger jobs do not run",
}
JOB_KEYS = (
    "script",
    "before_script",
    "after_script",
    "stage",
    "image",
    "services",
    "variables",
    "rules",
    "only",
    "except",
    "when",
    "start_in",
    "allow_failure",
    "needs",
    "dependencies",
    "parallel",
    "cache",
    "artifacts",
    "retry",
    "timeout",
    "interruptible",
    "extends",
    "inherit",
    "run",
    *IGNORED,
)
IMAGE_KEYS = ("name", "entrypoint", "pull_policy", "docker", "kubernetes")
SERVICE_KEYS = (*IMAGE_KEYS, "alias", "command", "variables")
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
NEED_KEYS = ("job", "optional", "artifacts", "parallel", "pipeline", "project", "ref")
ENVIRONMENT_KEYS = (
    "name",
    "url",
    "action",
    "on_stop",
    "auto_stop_in",
    "kubernetes",
    "deployment_tier",
)


@dataclass
class NeedEntry:
    """One ``needs`` entry as written: the job named, and how."""

    name: str
    node: Node
    optional: bool = False
    parallel: Node | None = None


@dataclass
class JobSpec:
    """What one job's keywords say, read and checked; ``ok`` is False after any problem."""

    name: str
    key: Scalar
    node: Map
    stage: str = "test"
    stage_node: Node | None = None
    script: list[str] = field(default_factory=list)
    before_script: list[str] = field(default_factory=list)
    after_script: list[str] = field(default_factory=list)
    image: str | None = None
    image_entrypoint: list[str] | None = None
    variables: dict[str, Variable] = field(default_factory=dict)
    inherited: list[str] = field(default_factory=list)  # top-level variables it takes
    rules: list[Rule] | None = None
    only: Policy | None = None
    except_: Policy | None = None
    when: str = "on_success"
    start_in: float | None = None
    allow_failure: bool | None = None
    exit_codes: list[int] = field(default_factory=list)
    needs: list[NeedEntry] | None = None
    needs_node: Node | None = None
    dependencies: list[tuple[str, Node]] | None = None
    parallel: Node | None = None
    services: list[Service] = field(default_factory=list)
    cache: list[Cache] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    artifacts_options: Artifacts = field(default_factory=Artifacts)
    retry: int = 0
    retry_when: list[str] = field(default_factory=list)
    timeout: float | None = None
    interruptible: bool = False
    environment: str | None = None
    trigger: bool = False
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (keyword, why)
    rule_needs: dict[int, list[NeedEntry]] = field(default_factory=dict)  # by rule index
    rule_start_in: dict[int, float] = field(default_factory=dict)
    ok: bool = True


def read_start_in(node: Node, add: Callable[[Node, str], None], what: str) -> float | None:
    """``start_in``: a duration of one week or less; None after reporting."""
    seconds = parse_duration(node.value) if isinstance(node, Scalar) else None
    if seconds is None or not 0 < seconds <= MAX_START_IN:
        add(
            node,
            f"{what} must be a duration of 1 week or less (like '30 minutes'), "
            f"not {describe(node)}",
        )
        return None
    return seconds


class _Reader:
    """Reads the keywords of one job into its ``JobSpec``."""

    def __init__(self, spec: JobSpec, problems: list[Problem]) -> None:
        self.spec = spec
        self.problems = problems

    def add(self, node: Node, message: str) -> None:
        self.spec.ok = False
        self.problems.append(problem_at(node, f"job '{self.spec.name}': {message}"))

    # -- small typed readers -------------------------------------------------------------

    def string(self, node: Node, what: str) -> str | None:
        if isinstance(node, Scalar) and isinstance(node.value, str) and node.value.strip():
            return node.value
        self.add(node, f"{what} must be a non-empty string, not {describe(node)}")
        return None

    def boolean(self, node: Node, what: str) -> bool | None:
        if isinstance(node, Scalar) and isinstance(node.value, bool):
            return node.value
        self.add(node, f"{what} must be true or false, not {describe(node)}")
        return None

    def strings(self, node: Node, what: str) -> list[str] | None:
        return strings(node, what, self.add)

    def mapping(self, node: Node, what: str, allowed: tuple[str, ...]) -> Map | None:
        if not isinstance(node, Map):
            self.add(node, f"{what} must be a mapping, not {describe(node)}")
            return None
        for key, _ in node.entries:
            if key.value not in allowed:
                self.add(key, f"unknown key '{key.text}' in {what}{suggest(key.text, allowed)}")
        return node

    def commands(self, node: Node, what: str) -> list[str] | None:
        """A script: a string or a list of strings (nested lists already flattened)."""
        if isinstance(node, Scalar) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, Seq):
            lines = []
            for item in node.items:
                if isinstance(item, Scalar) and isinstance(item.value, str):
                    lines.append(item.value)
                else:
                    hint = " (quote lines that contain ': ')" if isinstance(item, Map) else ""
                    self.add(item, f"{what} lines must be strings, not {describe(item)}{hint}")
            return lines
        self.add(node, f"{what} must be a string or a list of strings, not {describe(node)}")
        return None

    def ignore(self, key: str, node: Node) -> None:
        self.spec.ignored.append((key, IGNORED[key]))

    # -- keywords ------------------------------------------------------------------------

    def read(self, inherited: set[int]) -> None:
        spec, node = self.spec, self.spec.node
        for key, value in node.entries:
            name = key.value
            if not isinstance(name, str) or name not in JOB_KEYS:
                hint = suggest(key.text, JOB_KEYS)
                self.add(key, f"unknown key '{key.text}'{hint}")
                continue
            if isinstance(value, Scalar) and value.value is None:
                continue  # GitLab reads a keyword set to null as not set
            if name == "variables":
                self.variables(value, inherited)
            else:
                getattr(self, "k_" + name)(value)
        if node.get("script") is None and not spec.trigger:
            self.add(spec.key, "'script' is required (a job without 'trigger' runs a script)")
        if spec.when == "delayed" and node.get("start_in") is None:
            if not any(r.start_in is not None for r in spec.rules or ()):
                self.add(node.key_node("when") or spec.key, "'when: delayed' needs 'start_in'")
        if node.get("start_in") is not None and spec.when != "delayed":
            self.add(
                node.key_node("start_in") or spec.key, "'start_in' is only for 'when: delayed'"
            )
        if spec.rules is not None or node.get("rules") is not None:
            for other in ("only", "except"):
                if node.key_node(other) is not None:
                    self.add(node.key_node(other), f"'{other}' may not be used with 'rules'")  # type: ignore[arg-type]
        if spec.dependencies is not None and spec.needs is not None:
            needed = {n.name for n in spec.needs}
            for dep, at in spec.dependencies:
                if dep not in needed:
                    self.add(at, f"dependency '{dep}' should be part of needs")

    def variables(self, node: Node, inherited: set[int]) -> None:
        if not isinstance(node, Map):
            self.add(
                node, f"'variables' must be a mapping of names to values, not {describe(node)}"
            )
            return
        own = [(k, v) for k, v in node.entries if id(k) not in inherited]
        self.spec.inherited = [str(k.value) for k, _ in node.entries if id(k) in inherited]
        if not own:
            return
        definitions, found = read_variables(
            new_map(node, own), node.file or "", f"job '{self.spec.name}': ", job=True
        )
        if found:
            self.spec.ok = False
            self.problems.extend(found)
        self.spec.variables = definitions

    def k_script(self, node: Node) -> None:
        self.spec.script = self.commands(node, "'script'") or []

    def k_before_script(self, node: Node) -> None:
        self.spec.before_script = self.commands(node, "'before_script'") or []

    def k_after_script(self, node: Node) -> None:
        self.spec.after_script = self.commands(node, "'after_script'") or []

    def k_stage(self, node: Node) -> None:
        stage = self.string(node, "'stage'")
        if stage is not None:
            self.spec.stage, self.spec.stage_node = stage, node

    def k_image(self, node: Node) -> None:
        if isinstance(node, Map):
            self.mapping(node, "'image'", IMAGE_KEYS)
            name = node.get("name")
            if name is None:
                self.add(node, "'image' is missing required key 'name'")
                return
            self.spec.image = self.string(name, "'image:name'")
            entrypoint = node.get("entrypoint")
            if entrypoint is not None:
                self.spec.image_entrypoint = self.strings(entrypoint, "'image:entrypoint'")
            return
        self.spec.image = self.string(node, "'image'")

    def k_services(self, node: Node) -> None:
        if not isinstance(node, Seq):
            self.add(node, f"'services' must be a list, not {describe(node)}")
            return
        for item in node.items:
            if isinstance(item, Scalar):
                name = self.string(item, "'services' entries")
                if name is not None:
                    self.spec.services.append(Service(name=name))
                continue
            entry = self.mapping(item, "'services' entries", SERVICE_KEYS)
            if entry is None:
                continue
            if entry.get("name") is None:
                self.add(entry, "'services' entry is missing required key 'name'")
                continue
            name = self.string(entry.get("name"), "'services:name'")  # type: ignore[arg-type]
            fields: dict[str, object] = {}
            for key in ("alias",):
                if entry.get(key) is not None:
                    fields[key] = self.string(entry.get(key), f"'services:{key}'")  # type: ignore[arg-type]
            for key in ("entrypoint", "command"):
                if entry.get(key) is not None:
                    fields[key] = self.strings(entry.get(key), f"'services:{key}'")  # type: ignore[arg-type]
            if entry.get("variables") is not None:
                definitions, found = read_variables(
                    entry.get("variables"),  # type: ignore[arg-type]
                    entry.file or "",
                    f"job '{self.spec.name}': services: ",
                    job=True,
                )
                self.problems.extend(found)
                self.spec.ok = self.spec.ok and not found
                fields["variables"] = {k: v.value for k, v in definitions.items()}
            if name is not None:
                self.spec.services.append(Service(name=name, **fields))  # type: ignore[arg-type]

    def k_rules(self, node: Node) -> None:
        self.spec.rules = read_rules(node, self.add, workflow=False)
        for index, rule in enumerate(self.spec.rules or (), start=1):
            if rule.needs is not None:
                self.spec.rule_needs[index] = self.needs(rule.needs, "rules:needs")
            if rule.start_in is not None:
                rule_start = read_start_in(rule.start_in, self.add, "rules:start_in")
                if rule_start is not None and rule.when != "delayed":
                    self.add(rule.start_in, "rules:start_in is only for 'when: delayed'")
                elif rule_start is not None:
                    self.spec.rule_start_in[index] = rule_start
            if rule.when == "delayed" and rule.start_in is None:
                self.add(rule.node, "rules: 'when: delayed' needs 'start_in'")

    def k_only(self, node: Node) -> None:
        self.spec.only = read_policy(node, "only", self.add)

    def k_except(self, node: Node) -> None:
        self.spec.except_ = read_policy(node, "except", self.add)

    def k_when(self, node: Node) -> None:
        if isinstance(node, Scalar) and node.value in WHEN:
            self.spec.when = str(node.value)
        else:
            self.add(node, f"'when' must be one of {', '.join(WHEN)}, not {describe(node)}")

    def k_start_in(self, node: Node) -> None:
        self.spec.start_in = read_start_in(node, self.add, "'start_in'")

    def k_allow_failure(self, node: Node) -> None:
        if isinstance(node, Scalar) and isinstance(node.value, bool):
            self.spec.allow_failure = node.value
            return
        if not isinstance(node, Map) or node.get("exit_codes") is None:
            self.add(
                node,
                f"'allow_failure' must be true, false or {{exit_codes: ...}}, not {describe(node)}",
            )
            return
        self.mapping(node, "'allow_failure'", ("exit_codes",))
        codes = node.get("exit_codes")
        items = codes.items if isinstance(codes, Seq) else [codes]
        for item in items:
            if (
                isinstance(item, Scalar)
                and isinstance(item.value, int)
                and not isinstance(item.value, bool)
            ):
                self.spec.exit_codes.append(item.value)
            else:
                self.add(item, f"'allow_failure:exit_codes' must be integers, not {describe(item)}")

    def k_needs(self, node: Node) -> None:
        self.spec.needs_node = node
        self.spec.needs = self.needs(node, "'needs'")

    def needs(self, node: Node, what: str) -> list[NeedEntry]:
        """A ``needs`` list (also ``rules:needs``)."""
        if not isinstance(node, Seq):
            self.add(node, f"{what} must be a list, not {describe(node)}")
            return []
        if len(node.items) > MAX_NEEDS:
            self.add(node, f"{what} lists {len(node.items)} jobs; the limit is {MAX_NEEDS}")
        result = []
        for item in node.items:
            if isinstance(item, Scalar):
                name = self.string(item, f"{what} entries")
                if name is not None:
                    result.append(NeedEntry(name, item))
                continue
            entry = self.mapping(item, f"{what} entries", NEED_KEYS)
            if entry is None:
                continue
            for server in ("pipeline", "project"):
                if entry.key_node(server) is not None:
                    self.add(entry.key_node(server), f"needs:{server} needs a GitLab server")  # type: ignore[arg-type]
            job = entry.get("job")
            if job is None:
                if entry.get("pipeline") is None and entry.get("project") is None:
                    self.add(entry, f"{what} entry is missing required key 'job'")
                continue
            name = self.string(job, f"{what}:job")
            optional = entry.get("optional")
            is_optional = bool(optional is not None and self.boolean(optional, f"{what}:optional"))
            if entry.get("artifacts") is not None:
                self.boolean(entry.get("artifacts"), f"{what}:artifacts")  # type: ignore[arg-type]
            if name is not None:
                result.append(NeedEntry(name, job, is_optional, entry.get("parallel")))
        return result

    def k_dependencies(self, node: Node) -> None:
        if not isinstance(node, Seq):
            self.add(node, f"'dependencies' must be a list of job names, not {describe(node)}")
            return
        deps = []
        for item in node.items:
            name = self.string(item, "'dependencies' entries")
            if name is not None:
                deps.append((name, item))
        self.spec.dependencies = deps

    def k_parallel(self, node: Node) -> None:
        self.spec.parallel = node  # fan_out checks it

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
            if name != "unprotect" and result is not None:
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
            elif key in ("untracked", "public"):
                flag = self.boolean(value, f"'artifacts:{key}'")
                if key == "untracked" and flag is not None:
                    options["untracked"] = flag
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

    def k_retry(self, node: Node) -> None:
        if isinstance(node, Map):
            self.mapping(node, "'retry'", ("max", "when", "exit_codes"))
            if node.get("max") is not None:
                self.retry_max(node.get("max"))  # type: ignore[arg-type]
            when = node.get("when")
            if when is not None:
                reasons = self.strings(when, "'retry:when'") or []
                for reason in reasons:
                    if reason not in RETRY_WHEN:
                        self.add(
                            when,
                            f"'retry:when' has unknown reason '{reason}'"
                            + suggest(reason, RETRY_WHEN),
                        )
                self.spec.retry_when = reasons
            return
        self.retry_max(node)

    def retry_max(self, node: Node) -> None:
        value = node.value if isinstance(node, Scalar) else None
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_RETRY:
            self.spec.retry = value
        else:
            self.add(
                node, f"'retry' must be an integer from 0 to {MAX_RETRY}, not {describe(node)}"
            )

    def k_timeout(self, node: Node) -> None:
        seconds = parse_duration(node.value) if isinstance(node, Scalar) else None
        if seconds is None or not 0 < seconds <= MAX_TIMEOUT:
            self.add(
                node,
                "'timeout' must be a duration of at most a month, like '1h 30m', '2 hours' or "
                f"'3600' (seconds), not {describe(node)}",
            )
            return
        self.spec.timeout = seconds

    def k_interruptible(self, node: Node) -> None:
        flag = self.boolean(node, "'interruptible'")
        self.spec.interruptible = bool(flag)

    def k_extends(self, node: Node) -> None:
        pass  # applied by structure.py before jobs are read

    def k_inherit(self, node: Node) -> None:
        pass  # applied by structure.py

    def k_run(self, node: Node) -> None:
        self.add(node, "'run' (CI/CD steps) is not supported; use 'script'")

    def k_trigger(self, node: Node) -> None:
        if not isinstance(node, Scalar | Map):
            self.add(node, f"'trigger' must be a project path or a mapping, not {describe(node)}")
        self.spec.trigger = True
        self.ignore("trigger", node)

    def k_tags(self, node: Node) -> None:
        self.strings(node, "'tags'")
        self.ignore("tags", node)

    def k_environment(self, node: Node) -> None:
        if isinstance(node, Map):
            self.mapping(node, "'environment'", ENVIRONMENT_KEYS)
            name = node.get("name")
            if name is None:
                self.add(node, "'environment' is missing required key 'name'")
            else:
                self.spec.environment = self.string(name, "'environment:name'")
        else:
            self.spec.environment = self.string(node, "'environment'")
        self.ignore("environment", node)

    def k_coverage(self, node: Node) -> None:
        self.string(node, "'coverage'")
        self.ignore("coverage", node)

    def k_resource_group(self, node: Node) -> None:
        self.string(node, "'resource_group'")
        self.ignore("resource_group", node)

    def k_identity(self, node: Node) -> None:
        self.string(node, "'identity'")
        self.ignore("identity", node)

    def k_manual_confirmation(self, node: Node) -> None:
        self.string(node, "'manual_confirmation'")
        self.ignore("manual_confirmation", node)

    def k_publish(self, node: Node) -> None:
        self.string(node, "'publish'")
        self.ignore("publish", node)

    def k_pages(self, node: Node) -> None:
        if not (
            isinstance(node, Map) or (isinstance(node, Scalar) and isinstance(node.value, bool))
        ):
            self.add(node, f"'pages' must be a mapping or true/false, not {describe(node)}")
        self.ignore("pages", node)

    def _ignored_mapping(self, key: str, node: Node) -> None:
        if not isinstance(node, Map):
            self.add(node, f"'{key}' must be a mapping, not {describe(node)}")
        self.ignore(key, node)

    def k_release(self, node: Node) -> None:
        self._ignored_mapping("release", node)

    def k_id_tokens(self, node: Node) -> None:
        self._ignored_mapping("id_tokens", node)

    def k_secrets(self, node: Node) -> None:
        self._ignored_mapping("secrets", node)

    def k_hooks(self, node: Node) -> None:
        self._ignored_mapping("hooks", node)

    def k_dast_configuration(self, node: Node) -> None:
        self._ignored_mapping("dast_configuration", node)


def read_job(
    name: str, key: Scalar, node: Map, inherited: set[int], problems: list[Problem]
) -> JobSpec:
    """Job ``name`` (key node ``key``, value ``node``) read and checked.

    ``inherited`` holds the ids of the key nodes of top-level variables that ``structure.py``
    merged into the job's ``variables``: they are read once, at the top level, not per job.
    """
    spec = JobSpec(name=name, key=key, node=node)
    _Reader(spec, problems).read(inherited)
    return spec
