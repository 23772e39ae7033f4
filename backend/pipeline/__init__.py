"""Pipeline files: model, loading with positions, validation and planning. Pure: no I/O but reading.

    load_pipeline(path)  -> Pipeline          read + parse + override + validate one file
    parse_pipeline(text) -> Pipeline          the same, from text
    plan_pipeline(p)     -> Plan              per stage: start order and parallel groups; one DAG
                                              across stages for GitLab files
    select_jobs(p, names, with_needs=, manual=) -> Pipeline   --job / --with-needs / --manual
    load_gitlab_file(path, root, name=, context=) -> Pipeline  a .gitlab-ci.yml of a work tree
    find_pipelines(dir), find_pipeline_by_name(dir, name), to_dry_run_dict(p, plan)

Every failure is ``PipelineInvalid`` carrying positioned ``Problem``s (or ``NotFound`` for a name).
"""

from backend.pipeline.discover import (
    GITLAB_FILE,
    DirectorySource,
    GitlabContext,
    find_pipeline_by_name,
    find_pipelines,
    is_gitlab_file,
    load_all,
    load_gitlab_file,
    load_pipeline,
    parse_pipeline,
)
from backend.pipeline.model import DEFAULT_IMAGE, DEFAULT_STAGES, Job, Pipeline, Stage
from backend.pipeline.overrides import OVERRIDABLE, Override, parse_override
from backend.pipeline.plan import Plan, StagePlan, plan_pipeline, to_dry_run_dict
from backend.pipeline.select import NOT_SELECTED, select_jobs, selection_of

__all__ = [
    "DEFAULT_IMAGE",
    "DEFAULT_STAGES",
    "GITLAB_FILE",
    "NOT_SELECTED",
    "OVERRIDABLE",
    "DirectorySource",
    "GitlabContext",
    "Job",
    "Override",
    "Pipeline",
    "Plan",
    "Stage",
    "StagePlan",
    "find_pipeline_by_name",
    "find_pipelines",
    "is_gitlab_file",
    "load_all",
    "load_gitlab_file",
    "load_pipeline",
    "parse_override",
    "parse_pipeline",
    "plan_pipeline",
    "select_jobs",
    "selection_of",
    "to_dry_run_dict",
]
