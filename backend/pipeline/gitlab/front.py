"""The GitLab CI front end: a ``.gitlab-ci.yml`` (and its local includes) to a ``Pipeline``.

First cut: stages, script, image and needs; the other job keywords follow.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field

from backend.errors import PipelineInvalid, Problem
from backend.pipeline.gitlab.include import DictSource, Source
from backend.pipeline.gitlab.structure import resolve_structure
from backend.pipeline.loader import Scalar, Seq
from backend.pipeline.model import DEFAULT_IMAGE, GITLAB_DEFAULT_STAGES, Job, Pipeline, Stage


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
    problems: list[Problem] = list(structure.problems)
    stages = list(GITLAB_DEFAULT_STAGES)
    if isinstance(structure.stages, Seq):
        declared = [str(i.value) for i in structure.stages.items if isinstance(i, Scalar)]
        stages = [".pre", *[s for s in declared if s not in (".pre", ".post")], ".post"]
    jobs: dict[str, list[Job]] = {s: [] for s in stages}
    for job_name, node in structure.jobs.items():
        stage_node = node.get("stage")
        stage = str(stage_node.value) if isinstance(stage_node, Scalar) else "test"
        script_node = node.get("script")
        script = []
        if isinstance(script_node, Scalar):
            script = [str(script_node.value)]
        elif isinstance(script_node, Seq):
            script = [str(i.value) for i in script_node.items if isinstance(i, Scalar)]
        image_node = node.get("image")
        image = str(image_node.value) if isinstance(image_node, Scalar) else DEFAULT_IMAGE
        if stage not in jobs:
            problems.append(Problem(path, node.line, node.col, f"job '{job_name}': unknown stage"))
            continue
        jobs[stage].append(Job(name=job_name, stage=stage, image=image, script=script))
    if problems:
        raise PipelineInvalid(sorted(set(problems)))
    return Pipeline(
        name=name,
        stages=[Stage(name=s, jobs=j) for s, j in jobs.items() if j],
        source=path,
        format="gitlab",
    )
