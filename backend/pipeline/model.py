"""The typed pipeline model, built from a file that passed validation."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_IMAGE = "docker.io/library/ubuntu:latest"
DEFAULT_STAGES = ("build", "test", "doc", "deploy")
# GitLab's default stages (``.pre`` first and ``.post`` last are implicit in every GitLab file).
GITLAB_DEFAULT_STAGES = (".pre", "build", "test", "deploy", ".post")

When = Literal["on_success", "on_failure", "always", "manual", "delayed", "never"]
Format = Literal["native", "gitlab"]
PullPolicyName = Literal["always", "if-not-present", "never"]


class Service(BaseModel):
    """A container started beside a job (``services:``), reachable by its alias."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="the image")
    alias: str | None = None
    entrypoint: list[str] | None = None
    command: list[str] | None = None
    variables: dict[str, str] = Field(default_factory=dict)
    pull_policy: list[PullPolicyName] = Field(
        default_factory=list, description="tried in order; empty: the run's --pull"
    )


class Cache(BaseModel):
    """One ``cache:`` entry: paths kept between runs under a key."""

    model_config = ConfigDict(frozen=True)

    key: str = "default"
    key_files: list[str] = Field(default_factory=list, description="key: files: (hashed)")
    key_prefix: str | None = None
    paths: list[str] = Field(default_factory=list)
    policy: Literal["pull", "push", "pull-push"] = "pull-push"
    when: Literal["on_success", "on_failure", "always"] = "on_success"
    untracked: bool = False
    fallback_keys: list[str] = Field(default_factory=list)


class Artifacts(BaseModel):
    """What a job keeps after it ends besides ``paths`` (``Job.artifacts``): GitLab's details."""

    model_config = ConfigDict(frozen=True)

    exclude: list[str] = Field(default_factory=list)
    when: Literal["on_success", "on_failure", "always"] = "on_success"
    expire_in: str | None = None
    untracked: bool = False
    name: str | None = None
    reports: dict[str, list[str]] = Field(
        default_factory=dict, description="report kind (junit, dotenv, ...) -> paths"
    )


class Resources(BaseModel):
    """A job's limits (``resources:``, native format), enforced by Docker; None: no limit."""

    model_config = ConfigDict(frozen=True)

    cpus: float | None = Field(default=None, description="CPUs, e.g. 1.5 (Docker's --cpus)")
    memory: int | None = Field(
        default=None, description="bytes; the container cannot swap beyond it (--memory)"
    )
    memory_text: str | None = Field(default=None, description="the limit as written: 512m")


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
    # GitLab job keywords (both front ends; the defaults are the native format's behaviour)
    before_script: list[str] = Field(
        default_factory=list, description="run before script, in the same shell"
    )
    after_script: list[str] = Field(default_factory=list, description="run after, in a new shell")
    when: When = "on_success"
    start_in: float | None = Field(default=None, description="when: delayed: seconds to wait")
    dag: bool = Field(
        default=False,
        description="GitLab: the job has `needs:` (even empty), so it starts when they are done, "
        "whatever its stage; without it, a GitLab job waits for every job of earlier stages",
    )
    dependencies: list[str] | None = Field(
        default=None, description="jobs whose artifacts it gets; None: GitLab's default"
    )
    needs_without_artifacts: list[str] = Field(
        default_factory=list, description="needs given with `artifacts: false`: none from them"
    )
    allow_failure_exit_codes: list[int] = Field(
        default_factory=list, description="only these exit codes are allowed to fail"
    )
    retry_when: list[str] = Field(default_factory=list, description="retry only for these reasons")
    image_entrypoint: list[str] | None = None
    pull_policy: list[PullPolicyName] = Field(
        default_factory=list, description="image:pull_policy, tried in order; empty: --pull"
    )
    services: list[Service] = Field(default_factory=list)
    cache: list[Cache] = Field(default_factory=list)
    artifacts_options: Artifacts = Field(default_factory=Artifacts)
    interruptible: bool = False
    resources: Resources = Field(default_factory=Resources)
    environment: str | None = None
    node_index: int | None = Field(default=None, description="parallel: its instance, from 1")
    node_total: int | None = Field(default=None, description="parallel: how many instances")
    predefined: dict[str, str] = Field(
        default_factory=dict,
        description="GitLab files: the job's predefined CI_* variables (the run's ids are set "
        "when it runs); they come before every other variable",
    )
    run: bool = Field(default=True, description="False: planned but not run (see skip_reason)")
    skip_reason: str | None = Field(
        default=None, description="why it does not run: rules, only/except, not selected"
    )


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
    format: Format = Field(default="native", description="the front end that read the file")
    workspace: Literal["shared", "isolated"] = Field(
        default="shared",
        description="shared: every job works in the run's checkout; isolated: each job in its "
        "own copy of it plus its dependencies' artifacts (GitLab files)",
    )
    fail_fast: bool = Field(
        default=True,
        description="native files: the first failure stops the run; false: running jobs "
        "finish and the jobs after it are SKIPPED (GitLab files never fail fast)",
    )
    ignored: list[str] = Field(
        default_factory=list,
        description="keywords accepted without a local meaning, each once with why",
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
        """Pipeline variables overlaid with the job's (job wins per key).

        A GitLab job's variables already hold the top-level ones it inherits (GitLab's
        precedence, ``inherit: variables`` applied), so they are its whole environment.
        """
        if self.format == "gitlab":
            return dict(job.variables)
        return {**self.variables, **job.variables}
