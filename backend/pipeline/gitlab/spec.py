"""A GitLab job as read from its keywords (``JobSpec``), and the typed readers shared by the
modules that read them (``jobs.py``, ``job_files.py``, ``ignored.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from backend.errors import Problem
from backend.pipeline.gitlab.rules import Policy, Rule, strings
from backend.pipeline.gitlab.tree import problem_at
from backend.pipeline.gitlab.variables import Variable
from backend.pipeline.loader import Map, Node, Scalar, Seq, describe
from backend.pipeline.model import Artifacts, Cache, Service
from backend.pipeline.validate import suggest


@dataclass
class NeedEntry:
    """One ``needs`` entry as written: the job named, and how."""

    name: str
    node: Node
    optional: bool = False
    parallel: Node | None = None
    artifacts: bool = True  # False: `artifacts: false`, none of that job's artifacts


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
    pull_policy: list[str] = field(default_factory=list)  # image:pull_policy, in order
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


class KeywordReader:
    """Typed readers that report a problem, prefixed with the job, at the offending node."""

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

    def ignore(self, key: str, why: str) -> None:
        """Note ``key`` as accepted without a local meaning."""
        self.spec.ignored.append((key, why))

    # -- keywords ------------------------------------------------------------------------
