"""The typed pipeline model, built from a file that passed validation."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_IMAGE = "docker.io/library/ubuntu:latest"
DEFAULT_STAGES = ("build", "test", "doc", "deploy")


class Job(BaseModel):
    """One job: a script run in its own container."""

    model_config = ConfigDict(frozen=True)

    name: str
    stage: str
    image: str = Field(description="resolved: job image -> pipeline image -> DEFAULT_IMAGE")
    script: list[str]
    needs: list[str] = []
    allow_failure: bool = False
    artifacts: list[str] = []
    variables: dict[str, str] = Field(default_factory=dict, description="job variables only")
    timeout: float | None = Field(default=None, description="seconds")
    retry: int = 0


class Stage(BaseModel):
    """A stage: its jobs in file order."""

    model_config = ConfigDict(frozen=True)

    name: str
    jobs: list[Job]


class Pipeline(BaseModel):
    """A whole pipeline: stages in run order (unused default stages dropped)."""

    model_config = ConfigDict(frozen=True)

    name: str
    stages: list[Stage]
    image: str | None = None
    variables: dict[str, str] = Field(default_factory=dict)
    source: str = Field(default="", description="the file it was loaded from, as given")
    overrides: dict[str, str] = Field(
        default_factory=dict, description="--override KEY=VALUE applied when loading, in order"
    )

    def job(self, name: str) -> Job:
        """The job called ``name`` (KeyError when there is none)."""
        for stage in self.stages:
            for job in stage.jobs:
                if job.name == name:
                    return job
        raise KeyError(name)

    @property
    def jobs(self) -> list[Job]:
        """Every job, stage by stage, in file order."""
        return [job for stage in self.stages for job in stage.jobs]

    def job_env(self, job: Job) -> dict[str, str]:
        """Pipeline variables overlaid with the job's (job wins per key)."""
        return {**self.variables, **job.variables}
