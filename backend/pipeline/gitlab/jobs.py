"""One GitLab job's keywords, each checked for its type at its position: a ``JobSpec``.

    read_job(name, key, node, inherited, problems) -> JobSpec

What a keyword *means* for this pipeline (rules, variables) is decided in ``evaluate.py``,
needs across jobs in ``front.py``; here each value is read as GitLab's ``Entry::Job`` and
``Entry::Processable`` accept it (docs.gitlab.com/ci/yaml), with GitLab's limits: ``retry``
0..2, ``start_in`` at most a week, ``timeout`` at most a month, ``needs`` 50 entries.
``cache`` and ``artifacts`` are read in ``job_files.py``; keywords with no local meaning in
``ignored.py``, which checks their shape and notes them in ``JobSpec.ignored`` with why.
"""

from __future__ import annotations

from collections.abc import Callable

from backend.errors import Problem
from backend.pipeline.gitlab.duration import parse_duration
from backend.pipeline.gitlab.ignored import IGNORED, IgnoredReader
from backend.pipeline.gitlab.job_files import FilesReader
from backend.pipeline.gitlab.rules import read_policy, read_rules
from backend.pipeline.gitlab.spec import JobSpec, NeedEntry
from backend.pipeline.gitlab.tree import new_map
from backend.pipeline.gitlab.variables import read_variables
from backend.pipeline.loader import Map, Node, Scalar, Seq, describe
from backend.pipeline.model import Service
from backend.pipeline.validate import suggest

__all__ = ["JOB_KEYS", "JobSpec", "NeedEntry", "read_job", "read_start_in"]

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
RUNNER_KEYS = ("docker", "kubernetes")  # noted in Pipeline.ignored
IMAGE_KEYS = ("name", "entrypoint", "pull_policy", *RUNNER_KEYS)
PULL_POLICIES = ("always", "if-not-present", "never")
SERVICE_KEYS = (*IMAGE_KEYS, "alias", "command", "variables")
NEED_KEYS = ("job", "optional", "artifacts", "parallel", "pipeline", "project", "ref")


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


class _Reader(FilesReader, IgnoredReader):
    """Reads the keywords of one job into its ``JobSpec``."""

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
            policy = node.get("pull_policy")
            if policy is not None:
                self.spec.pull_policy = self.pull_policy(policy, "'image:pull_policy'")
            self.runner_keys(node, "image")
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
            self.runner_keys(entry, "services")
            fields: dict[str, object] = {}
            for key in ("alias",):
                if entry.get(key) is not None:
                    fields[key] = self.string(entry.get(key), f"'services:{key}'")  # type: ignore[arg-type]
            for key in ("entrypoint", "command"):
                if entry.get(key) is not None:
                    fields[key] = self.strings(entry.get(key), f"'services:{key}'")  # type: ignore[arg-type]
            if entry.get("pull_policy") is not None:
                policy = entry.get("pull_policy")
                fields["pull_policy"] = self.pull_policy(policy, "'services:pull_policy'")  # type: ignore[arg-type]
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

    def pull_policy(self, node: Node, what: str) -> list[str]:
        """``pull_policy``: one of PULL_POLICIES or a list of them, tried in order."""
        items = node.items if isinstance(node, Seq) else [node]
        policies = []
        for item in items:
            value = self.string(item, what)
            if value is not None and value not in PULL_POLICIES:
                choices = ", ".join(PULL_POLICIES)
                self.add(item, f"{what} must be one of {choices}, not '{value}'")
            elif value is not None:
                policies.append(value)
        if isinstance(node, Seq) and not node.items:
            self.add(node, f"{what} must not be an empty list")
        return policies

    def runner_keys(self, node: Map, keyword: str) -> None:
        """Note the runner settings of an ``image`` or ``services`` entry, as written."""
        for key, value in node.entries:
            if key.value in RUNNER_KEYS and not (isinstance(value, Scalar) and value.value is None):
                self.ignore_key(f"{keyword}:{key.value}")

    def k_rules(self, node: Node) -> None:
        self.spec.rules = read_rules(node, self.add, workflow=False, ignore=self.ignore_key)
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
        codes = node.get("exit_codes") if isinstance(node, Map) else None
        if codes is None:
            self.add(
                node,
                f"'allow_failure' must be true, false or {{exit_codes: ...}}, not {describe(node)}",
            )
            return
        self.mapping(node, "'allow_failure'", ("exit_codes",))
        self.spec.exit_codes += self.exit_codes(codes, "'allow_failure:exit_codes'")

    def exit_codes(self, node: Node, what: str) -> list[int]:
        """An exit code or a list of them (``allow_failure`` and ``retry``)."""
        codes = []
        for item in node.items if isinstance(node, Seq) else [node]:
            if (
                isinstance(item, Scalar)
                and isinstance(item.value, int)
                and not isinstance(item.value, bool)
            ):
                codes.append(item.value)
            else:
                self.add(item, f"{what} must be integers, not {describe(item)}")
        return codes

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
            flag = entry.get("artifacts")
            wants = flag is None or self.boolean(flag, f"{what}:artifacts") is not False  # type: ignore[arg-type]
            if name is not None:
                result.append(NeedEntry(name, job, is_optional, entry.get("parallel"), wants))
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

    def k_retry(self, node: Node) -> None:
        if isinstance(node, Map):
            self.mapping(node, "'retry'", ("max", "when", "exit_codes"))
            codes = node.get("exit_codes")
            if codes is not None:
                self.exit_codes(codes, "'retry:exit_codes'")
                self.ignore_key("retry:exit_codes")
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
