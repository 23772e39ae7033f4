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

* Stages: ``stages:`` (or the default ``build, test, deploy``), with ``.pre`` always first
  and ``.post`` always last, wherever listed (``EdgeStagesInjector``), repeats dropped; a
  job's stage defaults to ``test`` and must be one of them. Stages without jobs are left out.
* ``needs`` may name jobs of the same or an earlier stage (a later one is refused: "need ...
  is not defined in current or prior stages"), an undefined job is refused unless the need
  is ``optional``, and a need on a job that the pipeline leaves out (rules, only/except,
  ``when: never``) is refused as GitLab refuses it at pipeline creation, unless optional,
  when it is dropped. ``dependencies`` follow the same stage rule.
* ``workflow: rules``: the first matching rule decides; none matching, or ``when: never``,
  means GitLab creates no pipeline: here that is one positioned problem saying why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from backend.errors import PipelineInvalid, Problem
from backend.pipeline.gitlab.context import MERGE_REQUEST, GitlabContext
from backend.pipeline.gitlab.evaluate import Draft, Predefined, Setting, evaluate
from backend.pipeline.gitlab.ignored import NO_EFFECT
from backend.pipeline.gitlab.include import DictSource, Source
from backend.pipeline.gitlab.jobs import JobSpec, read_job
from backend.pipeline.gitlab.links import Links
from backend.pipeline.gitlab.parallel import Instance, fan_out
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
from backend.pipeline.validate import name_problem, suggest

DEFAULT_STAGES = ("build", "test", "deploy")
EDGE_STAGES = (".pre", ".post")
WORKFLOW_KEYS = ("rules", "name", "auto_cancel")
PROJECT_DIR = "/workspace"  # where the run's workspace is mounted (CI_PROJECT_DIR)
CHANGES_NOTE = (
    "rules:changes: there is no earlier commit to compare with, so every changes clause "
    "holds (GitLab's behaviour for a new branch or a pipeline without a push event)"
)
WORKFLOW_NOTES = {
    "name": "workflow:name: pipeline names are cicd's own (NAME#N)",
    "auto_cancel": "workflow:auto_cancel: cicd never cancels a run for a newer one",
}


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


def _predefined(context: GitlabContext) -> Predefined:
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

    def note(self, keyword: str) -> None:
        """Name ``keyword`` (of ``NO_EFFECT``) in ``Pipeline.ignored``, once."""
        self.notes.setdefault(keyword, f"{keyword}: {NO_EFFECT[keyword]}")

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

    def job_cycles(self, spec: JobSpec, file_variables: Mapping[str, Variable]) -> None:
        """Refuse cycles among a job's variables that its own variables take part in."""
        own = spec.node.get("variables")
        if not spec.variables or own is None:
            return
        inherited = {k: v for k, v in file_variables.items() if k in spec.inherited}
        merged = {**inherited, **spec.variables}
        if any(set(cycle) & set(spec.variables) for cycle in reference_cycles(merged)):
            self.cycles(merged, own, f"job '{spec.name}': ")

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
        # EdgeStagesInjector: .pre and .post are taken out wherever written, then put first
        # and last; repeats count once.
        middle = [stage for stage in dict.fromkeys(declared) if stage not in EDGE_STAGES]
        return [".pre", *middle, ".post"]

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
        rules = read_rules(rules_node, self.add, workflow=True, ignore=self.note)
        if rules is None:
            return {}
        if any(rule.has_changes for rule in rules):
            self.notes.setdefault("rules:changes", CHANGES_NOTE)
        matched = first_match(rules, _pipeline_values(setting), self.paths)
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
                shown = name[:40].encode("unicode_escape").decode("ascii")  # one line, always
                self.add(key, f"job name '{shown}' {problem}")
                continue
            spec = read_job(name, key, node, inherited, self.problems)
            for keyword, why in spec.ignored:
                self.notes.setdefault(keyword, f"{keyword}: {why}")
            policies = (spec.only, spec.except_)
            if any(r.has_changes for r in spec.rules or ()) or any(
                policy is not None and policy.changes for policy in policies
            ):
                self.notes.setdefault("rules:changes", CHANGES_NOTE)
            specs.append(spec)
        return specs

    def take_workflow_variables(
        self, spec: JobSpec, rule_variables: Mapping[str, Variable]
    ) -> None:
        """Let ``spec`` inherit the workflow rule's variables as it inherits top-level ones.

        GitLab merges them into the pipeline's variables, which every job inherits (unless
        ``inherit:variables`` says otherwise) below its own.
        """
        takes = self.structure.takes_variables.get(spec.name)
        spec.inherited += [
            name
            for name in rule_variables
            if name not in spec.inherited
            and name not in spec.variables
            and (takes is None or name in takes)
        ]

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
            predefined=_predefined(context),
            file_variables=file_variables,
            env=dict(context.env),
            paths=self.paths,
            project_path=context.project_path,
            workflow_rules=_has_workflow_rules(self.structure.workflow),
        )
        rule_variables = self.workflow(setting)
        if rule_variables:  # workflow:rules:variables override the top-level ones
            file_variables = {**file_variables, **rule_variables}
            setting = replace(setting, file_variables=file_variables)
        specs = [s for s in self.specs() if self.check_stage(s, stages)]
        for spec in specs:
            self.take_workflow_variables(spec, rule_variables)
        fanned: dict[str, list[Instance]] = {}
        drafts: list[Draft] = []
        for spec in specs:
            self.job_cycles(spec, file_variables)
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
        seen: set[str] = set()
        for draft in drafts:
            if draft.name in seen:
                message = f"job '{draft.name}' is defined twice (parallel names clash)"
                self.add(draft.spec.key, message)
            seen.add(draft.name)
        defined = set(self.structure.jobs) | seen  # a job whose stage was refused exists
        links = Links(drafts, stages, fanned, defined, self.problems, self.path)
        needs = {d.name: links.needs(d) for d in drafts}
        dependencies = {d.name: links.dependencies(d) for d in drafts}
        links.cycles(needs)
        if self.problems:
            raise PipelineInvalid(sorted(set(self.problems)))
        jobs: dict[str, list[Job]] = {stage: [] for stage in stages}
        for draft in drafts:
            predefined = setting.predefined(
                draft.name, draft.spec.stage, draft.node_index, draft.node_total
            )
            job = _job(draft, needs[draft.name], dependencies[draft.name], predefined)
            no_artifacts = links.no_artifacts.get(draft.name, [])
            jobs[draft.spec.stage].append(
                job.model_copy(update={"needs_without_artifacts": no_artifacts})
            )
        return Pipeline(
            name=name,
            stages=[Stage(name=s, jobs=j) for s, j in jobs.items() if j],
            image=None,
            variables=_pipeline_variables(setting),
            source=self.path,
            format="gitlab",
            workspace="isolated",  # GitLab: each job its own checkout plus what it depends on
            ignored=list(self.notes.values()),
        )


def _pipeline_values(setting: Setting) -> dict[str, str]:
    """What a pipeline-level expression sees: predefined (no job's), top-level, ``--env``."""
    predefined = {
        k: v
        for k, v in setting.predefined("", "", None, None).items()
        if not k.startswith(("CI_JOB_", "CI_NODE_"))
    }
    return resolve(merge(predefined=predefined, file=setting.file_variables, run=setting.env))


def _pipeline_variables(setting: Setting) -> dict[str, str]:
    """The top-level variables, expanded."""
    values = _pipeline_values(setting)
    return {name: values[name] for name in setting.file_variables}


def _has_workflow_rules(workflow: Node | None) -> bool:
    return isinstance(workflow, Map) and workflow.get("rules") is not None


def _job_key(node: Map, name: str) -> Scalar:
    """A node to position job-level problems at: the job's mapping start."""
    return Scalar(node.line, node.col, file=node.file, value=name, text=name)


def _job(
    draft: Draft, needs: list[str], dependencies: list[str] | None, predefined: dict[str, str]
) -> Job:
    spec = draft.spec
    return Job(
        predefined=predefined,
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
        pull_policy=spec.pull_policy,  # type: ignore[arg-type]
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
