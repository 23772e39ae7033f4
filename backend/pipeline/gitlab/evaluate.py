"""One GitLab job decided for one pipeline: its variables, whether it runs, and how.

    evaluate(spec, instance, setting) -> Draft

A ``JobSpec`` (``jobs.py``) says what the file wrote; here it meets the pipeline it runs in
(the branch or tag, the source, ``--env``): variables merged in GitLab's precedence and
expanded, ``rules`` (first match), or else ``only``/``except`` (default ``only: [branches,
tags]``), then ``when``, ``allow_failure`` and the needs in effect.

``allow_failure`` follows ``Entry::Job#ignored?``: a rule's value, else the job's, else true
for a job-level ``when: manual`` only; ``rules: when: manual`` keeps false, as GitLab
documents ("when: manual with rules defaults allow_failure to false").

The default ``only: [branches, tags]`` is not applied in a file with ``workflow: rules``
(``Entry::Processable#compose!`` deletes the only/except defaults "if workflow:rules: or
rules: are used", gitlab-org/gitlab!21742): there every job without rules is created.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from backend.errors import Problem
from backend.pipeline.gitlab.expressions import ExpressionError
from backend.pipeline.gitlab.jobs import JobSpec, NeedEntry
from backend.pipeline.gitlab.parallel import Instance
from backend.pipeline.gitlab.refs import DEFAULT_ONLY
from backend.pipeline.gitlab.rules import Policy, first_match, policy_matches
from backend.pipeline.gitlab.tree import problem_at
from backend.pipeline.gitlab.variables import Variable, expand, merge, resolve
from backend.pipeline.model import Service

Predefined = Callable[[str, str, int | None, int | None], dict[str, str]]
"""(job name, stage, CI_NODE_INDEX, CI_NODE_TOTAL) -> that job's predefined variables."""


@dataclass(frozen=True)
class Setting:
    """The pipeline a job is decided for (built once by ``front.py``)."""

    ref: str
    is_tag: bool
    is_branch: bool
    source: str
    described: str  # "branch 'main'", for messages
    predefined: Predefined
    file_variables: Mapping[str, Variable]
    env: Mapping[str, str]
    paths: Callable[[], Sequence[str]]
    project_path: str | None = None  # for only/except refs written ref@group/project
    workflow_rules: bool = False  # GitLab drops the default only: [branches, tags] then


@dataclass
class Draft:
    """One job as it will be in the pipeline (one per ``parallel`` instance)."""

    spec: JobSpec
    name: str
    run: bool = True
    skip_reason: str | None = None
    excluded: bool = False  # left out by rules/only/except/never: not in GitLab's pipeline
    when: str = "on_success"
    start_in: float | None = None
    allow_failure: bool = False
    exit_codes: list[int] = field(default_factory=list)
    interruptible: bool = False
    variables: dict[str, str] = field(default_factory=dict)
    image: str | None = None
    services: list[Service] = field(default_factory=list)
    needs: list[NeedEntry] | None = None
    node_index: int | None = None
    node_total: int | None = None


def _values(
    spec: JobSpec, instance: Instance | None, setting: Setting, rules: Mapping[str, Variable]
) -> tuple[dict[str, str], dict[str, str]]:
    """(every variable the job sees, the ones the file and --env give it) after expansion."""
    name = instance.name if instance else spec.name
    index = instance.index if instance else None
    total = instance.total if instance else None
    predefined = setting.predefined(name, spec.stage, index, total)
    inherited = {k: v for k, v in setting.file_variables.items() if k in spec.inherited}
    matrix = instance.variables if instance else {}
    merged = merge(
        predefined=predefined,
        file=inherited,
        job=spec.variables,
        matrix=matrix,
        rules=rules,
        run=setting.env,
    )
    values = resolve(merged)
    own = [*inherited, *spec.variables, *matrix, *rules, *setting.env]
    job = {k: values[k] for k in dict.fromkeys(own)}
    if instance is not None:
        job["CI_NODE_INDEX"] = str(instance.index)
        job["CI_NODE_TOTAL"] = str(instance.total)
    return values, job


def _policy(
    spec: JobSpec, setting: Setting, values: Mapping[str, str], problems: list[Problem]
) -> str | None:
    """Why ``only``/``except`` leave the job out, or None when they keep it."""
    only = spec.only
    if only is None and not setting.workflow_rules:
        only = Policy(refs=list(DEFAULT_ONLY))
    checks = (("only", only, False), ("except", spec.except_, True))
    for key, policy, excludes in checks:
        if policy is None:
            continue
        try:
            matched = policy_matches(
                policy,
                ref=setting.ref,
                is_tag=setting.is_tag,
                is_branch=setting.is_branch,
                source=setting.source,
                project_path=setting.project_path,
                values=values,
            )
        except ExpressionError as error:
            at = spec.node.get(key) or spec.key
            problems.append(problem_at(at, f"job '{spec.name}': {error}"))
            return None
        if matched == excludes:
            verb = "matches" if excludes else "does not match"
            return f"{key}: {verb} {setting.described}"
    return None


def evaluate(
    spec: JobSpec, instance: Instance | None, setting: Setting, problems: list[Problem]
) -> Draft:
    """The job (or one ``parallel`` instance of it) as this pipeline has it."""
    draft = Draft(spec=spec, name=instance.name if instance else spec.name)
    if instance is not None:
        draft.node_index, draft.node_total = instance.index, instance.total
    values, draft.variables = _values(spec, instance, setting, {})
    when = spec.when
    allow_failure = spec.allow_failure
    draft.start_in = spec.start_in
    draft.interruptible = spec.interruptible
    draft.needs = spec.needs
    if spec.rules is not None:
        matched = first_match(spec.rules, values, setting.paths)
        if matched is None:
            draft.run, draft.excluded = False, True
            draft.skip_reason = f"rules: no rule matches {setting.described}"
            when = "never"
        else:
            index, rule = matched
            if rule.variables:
                values, draft.variables = _values(spec, instance, setting, rule.variables)
            when = rule.when or when
            if rule.allow_failure is not None:
                allow_failure = rule.allow_failure
            if rule.interruptible is not None:
                draft.interruptible = rule.interruptible
            if index in spec.rule_needs:
                draft.needs = spec.rule_needs[index]
            draft.start_in = spec.rule_start_in.get(index, draft.start_in)
            if when == "never":
                draft.run, draft.excluded = False, True
                draft.skip_reason = f"rules: rule {index} says never"
    else:
        reason = _policy(spec, setting, values, problems)
        if reason is not None:
            draft.run, draft.excluded, draft.skip_reason = False, True, reason
        elif when == "never":
            draft.run, draft.excluded, draft.skip_reason = False, True, "when: never"
    # A job the pipeline leaves out is "never" whatever it wrote: a "manual" left there would
    # read as a job created and waiting to be started.
    draft.when = "never" if draft.excluded else when
    if allow_failure is spec.allow_failure:  # no rule overrode it: exit_codes stand
        draft.exit_codes = list(spec.exit_codes)
    if allow_failure is None:
        allow_failure = spec.when == "manual" and not draft.exit_codes
    draft.allow_failure = allow_failure
    if draft.run and spec.trigger:
        draft.run, draft.skip_reason = False, "trigger: downstream pipelines need a GitLab server"
    elif draft.run and when == "manual":
        draft.run, draft.skip_reason = False, "when: manual (start it with --manual)"
    if spec.image is not None:
        draft.image = expand(spec.image, values)
    draft.services = [
        service.model_copy(update={"name": expand(service.name, values)})
        for service in spec.services
    ]
    return draft
