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
