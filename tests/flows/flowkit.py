"""Building pipeline models in tests without a file."""

from __future__ import annotations

from typing import Any

from backend.pipeline.model import Job, Pipeline, Stage


def make_pipeline(name: str, stages: dict[str, list[dict[str, Any]]]) -> Pipeline:
    """A pipeline model straight from dicts: ``{"build": [{"name": "a", "needs": [...]}]}``."""
    return Pipeline(
        name=name,
        stages=[
            Stage(
                name=stage,
                jobs=[
                    Job(
                        **{
                            "stage": stage,
                            "image": "cicd-busybox:latest",
                            "script": ["true"],
                            **job,
                        }
                    )
                    for job in jobs
                ],
            )
            for stage, jobs in stages.items()
        ],
    )


def gitlab_pipeline(name: str, stages: dict[str, list[dict[str, Any]]]) -> Pipeline:
    """A pipeline as the GitLab front end builds it (``dag`` on the jobs with ``needs:``)."""
    marked = {
        stage: [{**job, "dag": "needs" in job} for job in jobs] for stage, jobs in stages.items()
    }
    return make_pipeline(name, marked).model_copy(update={"format": "gitlab"})
