"""The GitLab CI front end: a ``.gitlab-ci.yml`` (and its local includes) to a ``Pipeline``.

    load_gitlab(path, source, name=, context=) -> Pipeline
    parse_gitlab(text, filename, name=, context=) -> Pipeline      in memory, no include
    is_gitlab_file(path) -> bool
    GitlabContext                                    the pipeline's branch/tag, source, --env

The steps: ``structure.py`` resolves include/extends/!reference/default into concrete jobs;
``jobs.py`` reads each job's keywords; ``workflow: rules`` decide whether the pipeline runs at
all; ``parallel.py`` fans jobs out; ``evaluate.py`` decides each job for this pipeline; here
the jobs are checked against each other (stages, needs, dependencies, cycles) and built into
the model. Every problem of every file is collected, then raised at once as
``PipelineInvalid``, each positioned in the file that holds it.

GitLab rules followed (docs.gitlab.com/ci/yaml and ``lib/gitlab/ci/yaml_processor.rb``):

* Stages: ``stages:`` (or the default ``build, test, deploy``), with ``.pre`` put first and
  ``.post`` last when not listed (``EdgeStagesInjector``), repeats dropped; a job's stage
  defaults to ``test`` and must be one of them. Stages without jobs are left out.
* ``needs`` may name jobs of the same or an earlier stage (a later one is refused: "need ...
  is not defined in current or prior stages"), an undefined job is refused unless the need
  is ``optional``, and a need on a job that the pipeline leaves out (rules, only/except,
  ``when: never``) is refused as GitLab refuses it at pipeline creation, unless optional,
  when it is dropped. ``dependencies`` follow the same stage rule.
* ``workflow: rules``: the first matching rule decides; none matching, or ``when: never``,
  means GitLab creates no pipeline: here that is one positioned problem saying why.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from backend.errors import PipelineInvalid, Problem
from backend.pipeline.gitlab.evaluate import Draft, Setting, evaluate
from backend.pipeline.gitlab.include import DictSource, Source
from backend.pipeline.gitlab.jobs import JobSpec, read_job
from backend.pipeline.gitlab.parallel import Instance, expand_dependencies, expand_need, fan_out
from backend.pipeline.gitlab.rules import first_match, read_rules
from backend.pipeline.gitlab.structure import GitlabStructure, resolve_structure
from backend.pipeline.gitlab.tree import problem_at
from backend.pipeline.gitlab.variables import (
    Variable,
    merge,
    predefined,
    read_variables,
    reference_cycles,
    resolve,
)
from backend.pipeline.loader import Map, Node, Scalar, Seq, describe
from backend.pipeline.model import DEFAULT_IMAGE, Job, Pipeline, Stage
from backend.pipeline.plan import find_cycles
from backend.pipeline.validate import name_problem, suggest

DEFAULT_STAGES = ("build", "test", "deploy")
EDGE_STAGES = (".pre", ".post")
WORKFLOW_KEYS = ("rules", "name", "auto_cancel")
PROJECT_DIR = "/workspace"  # where the run's workspace is mounted (CI_PROJECT_DIR)
MERGE_REQUEST = "merge_request_event"
CHANGES_NOTE = (
    "rules:changes: there is no earlier commit to compare with, so every changes clause "
    "holds (GitLab's behaviour for a new branch or a pipeline without a push event)"
)
WORKFLOW_NOTES = {
    "name": "workflow:name: pipeline names are cicd's own (NAME#N)",
    "auto_cancel": "workflow:auto_cancel: cicd never cancels a run for a newer one",
}


@dataclass(frozen=True)
class GitlabContext:
    """What rules, only/except and predefined variables are evaluated against."""

    branch: str | None = "main"
    tag: str | None = None
    commit: str = "0" * 40
    message: str = ""
    default_branch: str = "main"
    source: str = "push"
    project_name: str = "project"
    project_path: str = "local/project"
    repository_url: str = ""
    pipeline_iid: int = 1
    env: Mapping[str, str] = field(default_factory=dict)  # cicd run --env: beats file variables

    @property
    def ref(self) -> str:
        """The tag, or else the branch (``CI_COMMIT_REF_NAME``)."""
        return self.tag if self.tag is not None else self.branch or ""

    def described(self) -> str:
        """``branch 'main'``, ``tag 'v1'`` or ``merge request from branch 'x'``, for messages."""
        if self.tag is not None:
            return f"tag '{self.tag}'"
        if self.source == MERGE_REQUEST:
            return f"merge request from branch '{self.branch}'"
        return f"branch '{self.branch}'"


def is_gitlab_file(path: str) -> bool:
    """Whether ``path`` is a GitLab CI file: ``.gitlab-ci.yml``/``.yaml``, or under ``.gitlab/``."""
    normal = path.replace("\\", "/")
    base = posixpath.basename(normal)
    if base in (".gitlab-ci.yml", ".gitlab-ci.yaml"):
        return True
    return ".gitlab" in normal.split("/")[:-1] and base.endswith((".yml", ".yaml"))


def parse_gitlab(
    text: str, filename: str, *, name: str, context: GitlabContext = GitlabContext()
) -> Pipeline:
    """The pipeline of GitLab CI ``text`` (no file but this one can be included)."""
    return load_gitlab(filename, DictSource({filename: text}), name=name, context=context)


def load_gitlab(
    path: str, source: Source, *, name: str, context: GitlabContext = GitlabContext()
) -> Pipeline:
    """The pipeline of the GitLab CI file ``path`` of ``source``; ``PipelineInvalid`` if bad."""
    structure = resolve_structure(path, source)
    return _Front(path, source, structure, context).build(name)


def _predefined(context: GitlabContext) -> object:
    """A function giving one job's predefined variables for ``context``."""

    def for_job(job: str, stage: str, index: int | None, total: int | None) -> dict[str, str]:
        values = predefined(
            commit=context.commit,
            ref=context.ref,
            is_tag=context.tag is not None,
            message=context.message,
            default_branch=context.default_branch,
            pipeline_id=context.pipeline_iid,
            pipeline_iid=context.pipeline_iid,
            job_id=1,
            job_name=job,
            stage=stage,
            project_dir=PROJECT_DIR,
            project_name=context.project_name,
            project_path=context.project_path,
            node_index=index,
            node_total=total,
            repository_url=context.repository_url,
            source=context.source,
        )
        if context.source == MERGE_REQUEST and context.tag is None:
            # A merge request pipeline has no CI_COMMIT_BRANCH, but its merge request's.
            values.pop("CI_COMMIT_BRANCH", None)
            values["CI_MERGE_REQUEST_SOURCE_BRANCH_NAME"] = context.branch or ""
            values["CI_MERGE_REQUEST_TARGET_BRANCH_NAME"] = context.default_branch
            values["CI_MERGE_REQUEST_EVENT_TYPE"] = "detached"
        return values

    return for_job


class _Front:
    """Builds one pipeline, collecting every problem on the way."""

    def __init__(
        self, path: str, source: Source, structure: GitlabStructure, context: GitlabContext
    ) -> None:
        self.path = path
        self.source = source
        self.structure = structure
        self.context = context
        self.problems: list[Problem] = list(structure.problems)
        self.notes: dict[str, str] = {}  # keyword -> "keyword: why", first seen first
        self._paths: list[str] | None = None

    def add(self, node: Node, message: str) -> None:
        self.problems.append(problem_at(node, message, self.path))

    def paths(self) -> Sequence[str]:
        """The repository's files, read once and only if an ``exists`` clause asks."""
        if self._paths is None:
            self._paths = sorted(self.source.paths())
        return self._paths

    # -- globals ---------------------------------------------------------------------------

    def file_variables(self) -> dict[str, Variable]:
        node = self.structure.variables
        if node is None or (isinstance(node, Scalar) and node.value is None):
            return {}
        definitions, found = read_variables(node, node.file or self.path, "", job=False)
        self.problems += found
        self.cycles(definitions, node, "")
        return definitions

    def cycles(self, definitions: Mapping[str, Variable], node: Node, where: str) -> None:
        for cycle in reference_cycles(definitions):
            chain = " -> ".join([*cycle, cycle[0]])
            at = node.key_node(cycle[0]) if isinstance(node, Map) else None
            self.add(at or node, f"{where}circular variable reference detected: {chain}")

    def stages(self) -> list[str]:
        node = self.structure.stages
        if node is None or (isinstance(node, Scalar) and node.value is None):
            declared: list[str] = list(DEFAULT_STAGES)
        elif not isinstance(node, Seq):
            self.add(node, f"stages must be a list of stage names, not {describe(node)}")
            declared = list(DEFAULT_STAGES)
        else:
            declared = []
            for item in node.items:
                if not (isinstance(item, Scalar) and isinstance(item.value, str) and item.value):
                    self.add(item, f"stages must be non-empty strings, not {describe(item)}")
                    continue
                problem = name_problem(item.value)
                if problem:
                    self.add(item, f"stage {describe(item)} {problem}")
                    continue
                declared.append(item.value)
        stages = list(dict.fromkeys(declared))
        if ".pre" not in stages:
            stages.insert(0, ".pre")
        if ".post" not in stages:
            stages.append(".post")
        return stages

    def workflow(self, setting: Setting) -> dict[str, Variable]:
        """Whether the pipeline runs (a problem when not), and the variables its rule sets."""
        node = self.structure.workflow
        if node is None or (isinstance(node, Scalar) and node.value is None):
            return {}
        if not isinstance(node, Map):
            self.add(node, f"workflow must be a mapping, not {describe(node)}")
            return {}
        for key, _ in node.entries:
            if key.value not in WORKFLOW_KEYS:
                self.add(
                    key, f"unknown key '{key.text}' in workflow{suggest(key.text, WORKFLOW_KEYS)}"
                )
            elif key.value in WORKFLOW_NOTES:
                self.notes.setdefault(f"workflow:{key.value}", WORKFLOW_NOTES[str(key.value)])
        rules_node = node.get("rules")
        if rules_node is None:
            return {}
        rules = read_rules(rules_node, self.add, workflow=True)
        if rules is None:
            return {}
        if any(rule.has_changes for rule in rules):
            self.notes.setdefault("rules:changes", CHANGES_NOTE)
        values = {
            k: v
            for k, v in setting.predefined("", "", None, None).items()
            if not k.startswith(("CI_JOB_", "CI_NODE_"))
        }
        values.update({k: v.value for k, v in setting.file_variables.items()})
        values.update(setting.env)
        matched = first_match(rules, values, self.paths)
        at = node.key_node("rules") or rules_node
        where = f"workflow:rules: this pipeline does not run for {setting.described}"
        if matched is None:
            self.add(at, f"{where} (no rule matched)")
            return {}
        index, rule = matched
        if rule.when == "never":
            self.add(rule.node, f"{where} (rule {index} says never)")
        return rule.variables

    # -- jobs ------------------------------------------------------------------------------

    def specs(self) -> list[JobSpec]:
        inherited: set[int] = set()
        if isinstance(self.structure.variables, Map):
            inherited = {id(key) for key, _ in self.structure.variables.entries}
        top = self.structure.jobs
        specs = []
        for name, node in top.items():
            key = _job_key(node, name)
            problem = name_problem(name)
            if problem:
                self.add(key, f"job name '{name[:40]}' {problem}")
                continue
            spec = read_job(name, key, node, inherited, self.problems)
            for keyword, why in spec.ignored:
                self.notes.setdefault(keyword, f"{keyword}: {why}")
            if any(r.has_changes for r in spec.rules or ()) or (
                spec.only is not None and spec.only.changes
            ):
                self.notes.setdefault("rules:changes", CHANGES_NOTE)
            specs.append(spec)
        return specs

    def check_stage(self, spec: JobSpec, stages: list[str]) -> bool:
        if spec.stage in stages:
            return True
        shown = ", ".join(stages)
        hint = suggest(spec.stage, stages)
        self.add(
            spec.stage_node or spec.key,
            f"job '{spec.name}': chosen stage '{spec.stage}' does not exist{hint}; "
            f"available stages are {shown}",
        )
        return False

    def build(self, name: str) -> Pipeline:
        context = self.context
        file_variables = self.file_variables()
        stages = self.stages()
        setting = Setting(
            ref=context.ref,
            is_tag=context.tag is not None,
            is_branch=context.tag is None and context.source != MERGE_REQUEST,
            source=context.source,
            described=context.described(),
            predefined=_predefined(context),  # type: ignore[arg-type]
            file_variables=file_variables,
            env=dict(context.env),
            paths=self.paths,
            project_path=context.project_path,
            workflow_rules=_has_workflow_rules(self.structure.workflow),
        )
        rule_variables = self.workflow(setting)
        if rule_variables:  # workflow:rules:variables override the top-level ones
            file_variables = {**file_variables, **rule_variables}
            setting = _replace(setting, file_variables)
        specs = [s for s in self.specs() if self.check_stage(s, stages)]
        fanned: dict[str, list[Instance]] = {}
        drafts: list[Draft] = []
        for spec in specs:
            if spec.variables:
                merged = {
                    **{k: v for k, v in file_variables.items() if k in spec.inherited},
                    **spec.variables,
                }
                own = spec.node.get("variables")
                if own is not None and any(
                    set(c) & set(spec.variables) for c in reference_cycles(merged)
                ):
                    self.cycles(merged, own, f"job '{spec.name}': ")
            if spec.parallel is not None:
                instances, found = fan_out(
                    spec.name, spec.parallel, spec.parallel.file or self.path
                )
                self.problems += found
                if found:
                    continue
                fanned[spec.name] = instances
                drafts += [evaluate(spec, i, setting, self.problems) for i in instances]
            else:
                drafts.append(evaluate(spec, None, setting, self.problems))
        by_name: dict[str, Draft] = {}
        for draft in drafts:
            if draft.name in by_name:
                self.add(
                    draft.spec.key, f"job '{draft.name}' is defined twice (parallel names clash)"
                )
            by_name.setdefault(draft.name, draft)
        all_names = set(self.structure.jobs) | set(by_name)  # a job with a bad stage exists
        stage_of = {d.name: stages.index(d.spec.stage) for d in drafts}
        needs = {d.name: self.needs(d, by_name, fanned, stage_of, all_names) for d in drafts}
        dependencies = {d.name: self.dependencies(d, by_name, fanned, stage_of) for d in drafts}
        self.check_cycles(drafts, needs)
        if self.problems:
            raise PipelineInvalid(sorted(set(self.problems)))
        jobs: dict[str, list[Job]] = {stage: [] for stage in stages}
        for draft in drafts:
            jobs[draft.spec.stage].append(_job(draft, needs[draft.name], dependencies[draft.name]))
        return Pipeline(
            name=name,
            stages=[Stage(name=s, jobs=j) for s, j in jobs.items() if j],
            image=None,
            variables=_pipeline_variables(file_variables, setting),
            source=self.path,
            format="gitlab",
            ignored=list(self.notes.values()),
        )

    # -- across jobs -----------------------------------------------------------------------

    def needs(
        self,
        draft: Draft,
        by_name: Mapping[str, Draft],
        fanned: Mapping[str, list[Instance]],
        stage_of: Mapping[str, int],
        all_names: set[str],
    ) -> list[str]:
        """The names ``draft`` needs, after parallel expansion, each checked."""
        if draft.needs is None:
            return []
        label = f"job '{draft.name}'"
        result: list[str] = []
        for entry in draft.needs:
            if entry.name not in all_names:
                if not entry.optional:
                    hint = suggest(entry.name, sorted(all_names))
                    self.add(
                        entry.node, f"{label} needs '{entry.name}', which is not defined{hint}"
                    )
                continue
            names, found = expand_need(
                entry.name, entry.parallel, fanned, entry.node.file or self.path, f"{label}: "
            )
            self.problems += found
            for need in names:
                other = by_name.get(need)
                if other is None or need in result:
                    continue
                if need == draft.name:
                    self.add(entry.node, f"{label} needs itself")
                    continue
                if stage_of[need] > stage_of[draft.name]:
                    self.add(
                        entry.node,
                        f"{label} needs '{need}', which is in the later stage "
                        f"'{other.spec.stage}' (needs name jobs of the same or an earlier stage)",
                    )
                    continue
                if other.excluded:
                    if not entry.optional and not draft.excluded:
                        self.add(
                            entry.node,
                            f"'{draft.name}' job needs '{need}' job, but '{need}' does not "
                            f"exist in the pipeline ({other.skip_reason}); to need a job that "
                            "sometimes does not exist in the pipeline, use needs:optional",
                        )
                    continue
                result.append(need)
        return result

    def dependencies(
        self,
        draft: Draft,
        by_name: Mapping[str, Draft],
        fanned: Mapping[str, list[Instance]],
        stage_of: Mapping[str, int],
    ) -> list[str] | None:
        if draft.spec.dependencies is None:
            return None
        label = f"job '{draft.name}'"
        result: list[str] = []
        known = sorted({d.spec.name for d in by_name.values()})
        for name, node in draft.spec.dependencies:
            if name not in known:
                hint = suggest(name, known)
                self.add(node, f"{label}: dependency '{name}' is not defined{hint}")
                continue
            for dep in expand_dependencies([name], fanned):
                other = by_name[dep]
                if stage_of[dep] > stage_of[draft.name]:
                    self.add(
                        node,
                        f"{label}: dependency '{dep}' is in the later stage "
                        f"'{other.spec.stage}' (dependencies name jobs of the same or an "
                        "earlier stage)",
                    )
                elif not other.excluded and dep not in result:
                    result.append(dep)
        return result

    def check_cycles(self, drafts: list[Draft], needs: Mapping[str, list[str]]) -> None:
        names = [d.name for d in drafts]
        by_name = {d.name: d for d in drafts}
        for cycle in find_cycles(names, needs):
            first = by_name[cycle[0]]
            node = first.spec.needs_node or first.spec.key
            for entry in first.needs or ():
                if (
                    cycle[1] == entry.name
                    or cycle[1].startswith(entry.name + " ")
                    or cycle[1].startswith(entry.name + ":")
                ):
                    node = entry.node
                    break
            self.add(node, f"cyclic dependency: {' -> '.join(cycle)}")


def _pipeline_variables(file_variables: Mapping[str, Variable], setting: Setting) -> dict[str, str]:
    """The top-level variables expanded (against the predefined ones and ``--env``)."""
    values = resolve(
        merge(
            predefined=setting.predefined("", "", None, None), file=file_variables, run=setting.env
        )
    )
    return {name: values[name] for name in file_variables}


def _has_workflow_rules(workflow: Node | None) -> bool:
    return isinstance(workflow, Map) and workflow.get("rules") is not None


def _replace(setting: Setting, file_variables: Mapping[str, Variable]) -> Setting:
    from dataclasses import replace

    return replace(setting, file_variables=file_variables)


def _job_key(node: Map, name: str) -> Scalar:
    """A node to position job-level problems at: the job's mapping start."""
    return Scalar(node.line, node.col, file=node.file, value=name, text=name)


def _job(draft: Draft, needs: list[str], dependencies: list[str] | None) -> Job:
    spec = draft.spec
    return Job(
        name=draft.name,
        stage=spec.stage,
        image=draft.image or DEFAULT_IMAGE,
        script=spec.script,
        needs=needs,
        allow_failure=draft.allow_failure,
        artifacts=spec.artifacts,
        variables=draft.variables,
        timeout=spec.timeout,
        retry=spec.retry,
        before_script=spec.before_script,
        after_script=spec.after_script,
        when=draft.when,  # type: ignore[arg-type]
        start_in=draft.start_in,
        dag=draft.needs is not None,
        dependencies=dependencies,
        allow_failure_exit_codes=draft.exit_codes,
        retry_when=spec.retry_when,
        image_entrypoint=spec.image_entrypoint,
        services=draft.services,
        cache=spec.cache,
        artifacts_options=spec.artifacts_options,
        interruptible=draft.interruptible,
        environment=spec.environment,
        node_index=draft.node_index,
        node_total=draft.node_total,
        run=draft.run,
        skip_reason=draft.skip_reason,
    )
