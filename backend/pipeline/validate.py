"""Validation: a positioned YAML tree in, a ``Pipeline`` out, or every problem at once.

Messages start lowercase, quote names in single quotes, and point at the offending node (the bad
value, the unknown key, the duplicate name, the unknown ``needs`` entry). A node set by
``--override`` gets its message prefixed with ``override 'KEY=VALUE': ``.

Top-level keys starting with ``.`` are ignored, so they can hold YAML anchors for ``<<`` merges
(as GitLab's hidden jobs do).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from backend.errors import PipelineInvalid, Problem
from backend.pipeline.cache_keyword import read_cache
from backend.pipeline.image_keyword import expand_names, image_fields, read_image, read_services
from backend.pipeline.loader import Map, Node, Scalar, Seq, describe
from backend.pipeline.model import (
    DEFAULT_IMAGE,
    DEFAULT_STAGES,
    Artifacts,
    Job,
    Pipeline,
    Resources,
    Stage,
)
from backend.pipeline.plan import find_cycles
from backend.pipeline.resources_keyword import read_resources

TOP_KEYS = ("pipeline", "jobs", "stages")
PIPELINE_KEYS = ("name", "stages", "image", "variables", "workspace", "fail_fast")
WORKSPACE_MODES = ("shared", "isolated")
ARTIFACT_KEYS = ("paths", "exclude", "when", "expire_in", "untracked", "name", "reports")
ARTIFACT_WHEN = ("on_success", "on_failure", "always")
JOB_KEYS = (
    "name",
    "stage",
    "image",
    "script",
    "needs",
    "allow_failure",
    "artifacts",
    "cache",
    "services",
    "variables",
    "timeout",
    "retry",
    "resources",
)
MAX_RETRY = 2

MAX_NAME = 255  # characters in a job, stage or pipeline name (a file name's usual limit)

# Every pattern is used with fullmatch: "$" would also match before a trailing newline.
_PIPELINE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DURATION = re.compile(r"(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?")
# Job and stage names stay as free as GitLab's ('deploy/staging', 'build: [a, b]', 'test 1/3'),
# but are one printable line: no C0 or C1 control character (NUL, newline, tab, escape) and no
# Unicode line or paragraph separator, which would forge lines in logs and messages.
_NAME_TEXT = re.compile(r"[^\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def parse_duration(value: object) -> float | None:
    """Seconds for ``30s``, ``10m``, ``1h``, ``1h30m`` or a bare integer; None when not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return float(value) if value > 0 else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.isdigit():
        return float(text) if int(text) > 0 else None
    match = _DURATION.fullmatch(text)
    if not text or not match:
        return None
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    return float(total) if total > 0 else None


def suggest(word: str, candidates: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` when a candidate is close to ``word``, else an empty string."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a job or a stage, or None when it can.

    Names are labels, never paths (see ``backend.paths``), but one shaped like a path that
    climbs (``../x``) or starts at the root (``/tmp/x``) is refused as well: it is a mistake
    or an attack, and no tool that reads it later should have to wonder.
    """
    if len(name) > MAX_NAME:
        return _too_long(name)
    if not _NAME_TEXT.fullmatch(name):
        return "must not contain control characters (newline, tab, NUL, escape...)"
    segments = name.split("/")
    if name.startswith("/") or any(part in (".", "..") for part in segments):
        return "must not start with '/' or have a '.' or '..' segment (names are not paths)"
    return None


def _too_long(name: str) -> str:
    return f"is {len(name)} characters long; the limit is {MAX_NAME}"


def variable_text(node: Scalar) -> str:
    """A variable's value as the environment will see it: numbers as written, bools lowercase."""
    value = node.value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return node.text


@dataclass
class _JobDraft:
    """What validation learned about one job, before the model is built."""

    index: int
    node: Map
    name: str | None = None
    name_node: Node | None = None
    stage: str | None = None
    stage_node: Node | None = None
    needs: list[tuple[str, Node]] = field(default_factory=list)
    fields: dict[str, object] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"job '{self.name}'" if self.name is not None else f"job #{self.index}"


class _Validator:
    """Collects every problem of one file while reading its tree."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.problems: list[Problem] = []

    def add(self, node: Node, message: str) -> None:
        if node.override:
            message = f"override '{node.override}': {message}"
        self.problems.append(Problem(self.filename, node.line, node.col, message))

    # -- small typed readers: each returns the value or None after reporting --------------------

    def string(self, node: Node, what: str) -> str | None:
        if isinstance(node, Scalar) and isinstance(node.value, str) and node.value.strip():
            return node.value
        self.add(node, f"{what} must be a non-empty string, not {describe(node)}")
        return None

    def unknown_keys(self, mapping: Map, allowed: Sequence[str], where: str) -> None:
        for key, _ in mapping.entries:
            if isinstance(key.value, str) and key.value in allowed:
                continue
            if where == "at top level" and isinstance(key.value, str) and key.value.startswith("."):
                continue
            self.add(key, f"unknown key '{key.text}' {where}{suggest(key.text, allowed)}")

    def string_list(self, node: Node, what: str, entries: str) -> list[tuple[str, Node]] | None:
        if not isinstance(node, Seq):
            self.add(node, f"{what} must be a list, not {describe(node)}")
            return None
        result: list[tuple[str, Node]] = []
        for item in node.items:
            if isinstance(item, Scalar) and isinstance(item.value, str) and item.value.strip():
                result.append((item.value, item))
            else:
                self.add(item, f"{entries} must be non-empty strings, not {describe(item)}")
        return result

    def variables(self, node: Node, where: str) -> dict[str, str]:
        if not isinstance(node, Map):
            self.add(
                node,
                f"{where}'variables' must be a mapping of names to values, not {describe(node)}",
            )
            return {}
        result = {}
        for key, value in node.entries:
            if not isinstance(key.value, str) or not _VARIABLE_NAME.fullmatch(key.value):
                self.add(
                    key,
                    f"{where}variable name '{key.text}' must be letters, digits and '_',"
                    " not starting with a digit",
                )
                continue
            if isinstance(value, Scalar):
                result[key.value] = variable_text(value)
            else:
                self.add(
                    value,
                    f"{where}variable '{key.value}' must be a string, number or "
                    f"boolean, not {describe(value)}",
                )
        return result

    # -- the file ---------------------------------------------------------------------------

    def pipeline(self, root: Node | None) -> Pipeline | None:
        if root is None or (isinstance(root, Scalar) and root.value is None):
            self.add(Scalar(1, 1), "file is empty; expected a mapping with 'pipeline' and 'jobs'")
            return None
        if not isinstance(root, Map):
            self.add(
                root,
                f"top level must be a mapping with 'pipeline' and 'jobs', not {describe(root)}",
            )
            return None
        self.unknown_keys(root, TOP_KEYS, "at top level")
        head = self.head(root)
        stages, explicit = self.stages(root)
        drafts = self.jobs(root)
        self.cross_check(drafts, stages, explicit)
        if self.problems or head is None or stages is None:
            return None
        return self.build(head, stages, explicit, drafts)

    def head(self, root: Map) -> dict[str, object] | None:
        """The ``pipeline:`` mapping: name, image, variables."""
        node = root.get("pipeline")
        if node is None:
            self.add(root, "missing required key 'pipeline'")
            return None
        if not isinstance(node, Map):
            self.add(node, f"'pipeline' must be a mapping, not {describe(node)}")
            return None
        self.unknown_keys(node, PIPELINE_KEYS, "in 'pipeline'")
        head: dict[str, object] = {"image": None, "variables": {}}
        name_node = node.get("name")
        if name_node is None:
            self.add(root.key_node("pipeline") or node, "'pipeline' is missing required key 'name'")
            head["name"] = None
        else:
            name = self.string(name_node, "pipeline: 'name'")
            if name is not None and len(name) > MAX_NAME:
                self.add(name_node, f"pipeline: 'name' {_too_long(name)}")
                name = None
            elif name is not None and not _PIPELINE_NAME.fullmatch(name):
                self.add(
                    name_node,
                    f"pipeline: 'name' {describe(name_node)} may only contain "
                    "letters, digits, '.', '_' and '-' (it names runs as NAME#N)",
                )
                name = None
            head["name"] = name
            head["name_node"] = name_node
        image = node.get("image")
        if image is not None:
            head["image"] = self.string(image, "pipeline: 'image'")
        variables = node.get("variables")
        if variables is not None:
            head["variables"] = self.variables(variables, "pipeline: ")
        workspace = node.get("workspace")
        if workspace is not None:
            if isinstance(workspace, Scalar) and workspace.value in WORKSPACE_MODES:
                head["workspace"] = workspace.value
            else:
                self.add(
                    workspace,
                    f"pipeline: 'workspace' must be shared or isolated, not {describe(workspace)}",
                )
        fail_fast = node.get("fail_fast")
        if fail_fast is not None:
            head["fail_fast"] = self.boolean(fail_fast, "pipeline: 'fail_fast'")
        return head

    def stages(self, root: Map) -> tuple[list[tuple[str, Node]] | None, bool]:
        """The declared stages (or the defaults) and whether they were declared."""
        top = root.get("stages")
        pipeline = root.get("pipeline")
        nested = pipeline.get("stages") if isinstance(pipeline, Map) else None
        if top is not None and nested is not None:
            top_key = root.key_node("stages")
            nested_key = pipeline.key_node("stages")  # type: ignore[union-attr]
            assert top_key is not None and nested_key is not None
            first, second = sorted([top_key, nested_key], key=lambda k: (k.line, k.col))
            self.add(
                second,
                f"'stages' is given both at top level and under 'pipeline' (first "
                f"at line {first.line}); keep one",
            )
            top = top if first is top_key else None
        node = top if top is not None else nested
        if node is None:
            return [(name, root) for name in DEFAULT_STAGES], False
        if not isinstance(node, Seq) or not node.items:
            shown = "an empty list" if isinstance(node, Seq) else describe(node)
            self.add(node, f"'stages' must be a non-empty list of stage names, not {shown}")
            return None, True
        stages: list[tuple[str, Node]] = []
        seen: dict[str, Node] = {}
        for item in node.items:
            if not (
                isinstance(item, Scalar) and isinstance(item.value, str) and item.value.strip()
            ):
                self.add(item, f"stage names must be non-empty strings, not {describe(item)}")
                continue
            problem = name_problem(item.value)
            if problem:
                self.add(item, f"stage name {describe(item)} {problem}")
            if item.value in seen:
                self.add(
                    item,
                    f"duplicate stage '{item.value}' (first listed at line "
                    f"{seen[item.value].line})",
                )
                continue
            seen[item.value] = item
            stages.append((item.value, item))
        return stages, True

    def jobs(self, root: Map) -> list[_JobDraft]:
        node = root.get("jobs")
        if node is None:
            self.add(root, "missing required key 'jobs'")
            return []
        if not isinstance(node, Seq):
            hint = " (write each job as '- name: ...')" if isinstance(node, Map) else ""
            self.add(node, f"'jobs' must be a list of jobs, not {describe(node)}{hint}")
            return []
        if not node.items:
            self.add(node, "'jobs' must list at least one job")
            return []
        drafts = []
        for index, item in enumerate(node.items, start=1):
            if not isinstance(item, Map):
                self.add(item, f"job #{index} must be a mapping, not {describe(item)}")
                continue
            drafts.append(self.job(index, item))
        return drafts

    def job(self, index: int, node: Map) -> _JobDraft:
        draft = _JobDraft(index=index, node=node)
        name_node = node.get("name")
        if name_node is not None:
            draft.name = self.string(name_node, f"job #{index}: 'name'")
            draft.name_node = name_node
            problem = name_problem(draft.name) if draft.name is not None else None
            if problem:
                self.add(name_node, f"job #{index}: 'name' {describe(name_node)} {problem}")
        label = draft.label
        self.unknown_keys(node, JOB_KEYS, f"in {label}")
        for required in ("name", "stage", "script"):
            if node.get(required) is None:
                self.add(node, f"{label} is missing required key '{required}'")
        readers: dict[str, Callable[[Node], object]] = {
            "image": lambda n: read_image(n, label, self.add),
            "services": lambda n: read_services(n, label, self.add),
            "script": lambda n: self.script(n, label),
            "allow_failure": lambda n: self.boolean(n, f"{label}: 'allow_failure'"),
            "artifacts": lambda n: self.artifacts(n, label, draft),
            "cache": lambda n: read_cache(n, label, self.add),
            "variables": lambda n: self.variables(n, f"{label}: "),
            "timeout": lambda n: self.timeout(n, label),
            "retry": lambda n: self.retry(n, label),
            "resources": lambda n: read_resources(n, label, self.add),
        }
        for key, read in readers.items():
            value = node.get(key)
            if value is not None:
                draft.fields[key] = read(value)
        stage_node = node.get("stage")
        if stage_node is not None:
            draft.stage = self.string(stage_node, f"{label}: 'stage'")
            draft.stage_node = stage_node
        needs_node = node.get("needs")
        if needs_node is not None:
            needs = self.string_list(needs_node, f"{label}: 'needs'", f"{label}: 'needs' entries")
            draft.needs = needs or []
        return draft

    def script(self, node: Node, label: str) -> list[str] | None:
        what = f"{label}: 'script'"
        if isinstance(node, Scalar) and isinstance(node.value, str) and node.value.strip():
            return [node.value]
        if isinstance(node, Seq) and node.items:
            lines = []
            for item in node.items:
                if isinstance(item, Scalar) and isinstance(item.value, str) and item.value.strip():
                    lines.append(item.value)
                    continue
                hint = " (quote lines that contain ': ')" if isinstance(item, Map) else ""
                self.add(
                    item, f"{what} lines must be non-empty strings, not {describe(item)}{hint}"
                )
            return lines
        shown = "an empty list" if isinstance(node, Seq) else describe(node)
        self.add(node, f"{what} must be a non-empty string or list of strings, not {shown}")
        return None

    def boolean(self, node: Node, what: str) -> bool | None:
        if isinstance(node, Scalar) and isinstance(node.value, bool):
            return node.value
        self.add(node, f"{what} must be true or false, not {describe(node)}")
        return None

    def artifacts(self, node: Node, label: str, draft: _JobDraft) -> list[str] | None:
        """A list of patterns, or GitLab's mapping (paths, exclude, when, expire_in, ...)."""
        what = f"{label}: 'artifacts"
        if not isinstance(node, Map):
            paths = self.string_list(node, f"{what}'", f"{what}' entries")
            return None if paths is None else [path for path, _ in paths]
        self.unknown_keys(node, ARTIFACT_KEYS, f"in {what}'")
        options: dict[str, object] = {}
        result: list[str] = []
        for key, value in node.entries:
            name = key.value
            if name in ("paths", "exclude"):
                found = self.string_list(value, f"{what}:{name}'", f"{what}:{name}' entries")
                listed = [path for path, _ in found or []]
                if name == "paths":
                    result = listed
                else:
                    options["exclude"] = listed
            elif name == "when":
                if isinstance(value, Scalar) and value.value in ARTIFACT_WHEN:
                    options["when"] = value.value
                else:
                    self.add(
                        value,
                        f"{what}:when' must be one of {', '.join(ARTIFACT_WHEN)}, "
                        f"not {describe(value)}",
                    )
            elif name == "expire_in":
                from backend.pipeline.gitlab.duration import parse_duration as gitlab_duration

                text = value.value if isinstance(value, Scalar) else None
                if isinstance(text, str) and (text == "never" or gitlab_duration(text) is not None):
                    options["expire_in"] = text
                else:
                    self.add(
                        value,
                        f"{what}:expire_in' must be a duration like '1 week' or 'never', "
                        f"not {describe(value)}",
                    )
            elif name == "untracked":
                flag = self.boolean(value, f"{what}:untracked'")
                if flag is not None:
                    options["untracked"] = flag
            elif name == "name":
                options["name"] = self.string(value, f"{what}:name'")
            elif name == "reports":
                options["reports"] = self.reports(value, what)
        draft.fields["artifacts_options"] = Artifacts(**options)  # type: ignore[arg-type]
        return result

    def reports(self, node: Node, what: str) -> dict[str, list[str]]:
        """``reports: {dotenv: PATH | [PATHS]}`` (the kinds a native job can hand on)."""
        if not isinstance(node, Map):
            self.add(node, f"{what}:reports' must be a mapping, not {describe(node)}")
            return {}
        self.unknown_keys(node, ("dotenv", "junit"), f"in {what}:reports'")
        result: dict[str, list[str]] = {}
        for key, value in node.entries:
            if isinstance(value, Scalar) and isinstance(value.value, str) and value.value.strip():
                result[str(key.value)] = [value.value]
                continue
            found = self.string_list(
                value, f"{what}:reports:{key.text}'", f"{what}:reports:{key.text}' entries"
            )
            if found is not None:
                result[str(key.value)] = [path for path, _ in found]
        return result

    def timeout(self, node: Node, label: str) -> float | None:
        seconds = parse_duration(node.value) if isinstance(node, Scalar) else None
        if seconds is None:
            self.add(
                node,
                f"{label}: 'timeout' must be a duration like 30s, 10m, 1h30m or a "
                f"number of seconds, not {describe(node)}",
            )
        return seconds

    def retry(self, node: Node, label: str) -> int | None:
        value = node.value if isinstance(node, Scalar) else None
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_RETRY:
            return value
        self.add(
            node, f"{label}: 'retry' must be an integer from 0 to {MAX_RETRY}, not {describe(node)}"
        )
        return None

    # -- across jobs --------------------------------------------------------------------------

    def cross_check(
        self, drafts: list[_JobDraft], stages: list[tuple[str, Node]] | None, explicit: bool
    ) -> None:
        """Unique names, defined stages, needs that exist in the same stage, no cycles."""
        by_name: dict[str, _JobDraft] = {}
        for draft in drafts:
            if draft.name is None or draft.name_node is None:
                continue
            first = by_name.get(draft.name)
            if first is not None and first.name_node is not None:
                self.add(
                    draft.name_node,
                    f"duplicate job name '{draft.name}' (first defined at "
                    f"line {first.name_node.line})",
                )
                continue
            by_name[draft.name] = draft
        stage_names = [name for name, _ in stages] if stages is not None else None
        if stage_names is not None:
            for draft in drafts:
                if draft.stage is None or draft.stage in stage_names:
                    continue
                assert draft.stage_node is not None
                hint = suggest(draft.stage, stage_names) or (
                    f" (stages: {', '.join(stage_names)}"
                    + ("" if explicit else "; declare others with 'stages'")
                    + ")"
                )
                self.add(
                    draft.stage_node,
                    f"{draft.label} has stage '{draft.stage}', which is not defined{hint}",
                )
        for draft in drafts:
            self.needs(draft, by_name)
        self.cycles(drafts, by_name)
        if explicit and stages is not None:
            used = {draft.stage for draft in drafts}
            for name, node in stages:
                if name not in used:
                    self.add(node, f"stage '{name}' has no jobs")

    def needs(self, draft: _JobDraft, by_name: dict[str, _JobDraft]) -> None:
        seen: set[str] = set()
        for need, node in draft.needs:
            if need in seen:
                self.add(node, f"{draft.label} needs '{need}' more than once")
                continue
            seen.add(need)
            if need == draft.name:
                self.add(node, f"{draft.label} needs itself")
                continue
            other = by_name.get(need)
            if other is None:
                hint = suggest(need, list(by_name))
                self.add(node, f"{draft.label} needs '{need}', which is not defined{hint}")
            elif other.stage is not None and draft.stage is not None and other.stage != draft.stage:
                self.add(
                    node,
                    f"{draft.label} needs '{need}', which is in stage '{other.stage}', "
                    f"not '{draft.stage}' (needs must be in the same stage)",
                )

    def cycles(self, drafts: list[_JobDraft], by_name: dict[str, _JobDraft]) -> None:
        stages: dict[str, list[_JobDraft]] = {}
        for draft in by_name.values():
            if draft.stage is not None:
                stages.setdefault(draft.stage, []).append(draft)
        for stage, members in stages.items():
            names = [d.name for d in members if d.name is not None]
            needs = {d.name: [n for n, _ in d.needs] for d in members if d.name is not None}
            for cycle in find_cycles(names, needs):
                first = by_name[cycle[0]]
                node = next(node for need, node in first.needs if need == cycle[1])
                self.add(node, f"cyclic dependency in stage '{stage}': {' -> '.join(cycle)}")

    # -- the model ----------------------------------------------------------------------------

    def build(
        self,
        head: dict[str, object],
        stages: list[tuple[str, Node]],
        explicit: bool,
        drafts: list[_JobDraft],
    ) -> Pipeline:
        pipeline_image = head["image"]
        assert pipeline_image is None or isinstance(pipeline_image, str)
        jobs: dict[str, list[Job]] = {name: [] for name, _ in stages}
        for draft in drafts:
            assert draft.name is not None and draft.stage is not None
            fields = draft.fields
            job = Job(
                name=draft.name,
                stage=draft.stage,
                image=image_fields(fields).get("image") or pipeline_image or DEFAULT_IMAGE,
                image_entrypoint=image_fields(fields).get("image_entrypoint"),
                pull_policy=image_fields(fields).get("pull_policy", []),
                services=fields.get("services") or [],
                script=fields["script"],
                needs=[need for need, _ in draft.needs],
                allow_failure=fields.get("allow_failure", False),
                artifacts=fields.get("artifacts", []),
                artifacts_options=fields.get("artifacts_options") or Artifacts(),
                cache=fields.get("cache") or [],
                variables=fields.get("variables", {}),
                timeout=fields.get("timeout"),
                retry=fields.get("retry", 0),
                resources=fields.get("resources") or Resources(),
            )
            jobs[draft.stage].append(expand_names(job, head["variables"]))  # type: ignore[arg-type]
        return Pipeline(
            name=head["name"],
            stages=[
                Stage(name=name, jobs=jobs[name]) for name, _ in stages if explicit or jobs[name]
            ],
            image=pipeline_image,
            variables=head["variables"],
            workspace=head.get("workspace", "shared"),
            fail_fast=head.get("fail_fast") is not False,
        )


def validate_tree(root: Node | None, filename: str, problems: Sequence[Problem] = ()) -> Pipeline:
    """Validate a loaded tree; raise ``PipelineInvalid`` with every problem, sorted by position.

    ``problems`` are those found earlier (while loading, or applying overrides); they are reported
    together with validation's own.
    """
    validator = _Validator(filename)
    validator.problems.extend(problems)
    pipeline = validator.pipeline(root)
    if validator.problems or pipeline is None:
        raise PipelineInvalid(sorted(set(validator.problems)))
    return pipeline
