"""Pipeline files: model, loading with positions, validation and planning. Pure: no I/O but reading.

    load_pipeline(path)  -> Pipeline          read + parse + override + validate one file
    parse_pipeline(text) -> Pipeline          the same, from text
    plan_pipeline(p)     -> Plan              per stage: start order and parallel groups
    check_all(dir)       -> [(path, Pipeline)]  every file of .pipelines/, names unique
    find_pipelines(dir), find_pipeline_by_name(dir, name), to_dry_run_dict(p, plan)

Every failure is ``PipelineInvalid`` carrying positioned ``Problem``s (or ``NotFound`` for a name).
"""

from backend.pipeline.discover import (
    check_all,
    find_pipeline_by_name,
    find_pipelines,
    load_all,
    load_pipeline,
    parse_pipeline,
)
from backend.pipeline.model import DEFAULT_IMAGE, DEFAULT_STAGES, Job, Pipeline, Stage
from backend.pipeline.overrides import OVERRIDABLE, Override, parse_override
from backend.pipeline.plan import Plan, StagePlan, plan_pipeline, to_dry_run_dict

__all__ = [
    "DEFAULT_IMAGE",
    "DEFAULT_STAGES",
    "OVERRIDABLE",
    "Job",
    "Override",
    "Pipeline",
    "Plan",
    "Stage",
    "StagePlan",
    "check_all",
    "find_pipeline_by_name",
    "find_pipelines",
    "load_all",
    "load_pipeline",
    "parse_override",
    "parse_pipeline",
    "plan_pipeline",
    "to_dry_run_dict",
]
