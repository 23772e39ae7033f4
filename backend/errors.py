"""Every error the backend raises on purpose, in one tree.

    CicdError
    ├── PipelineError              a pipeline file cannot be used
    │   └── PipelineInvalid        it failed validation; carries every positioned problem
    ├── UsageError                 the caller asked for something that makes no sense
    ├── ServerBusy                 a server is at a limit (run queue, followers): try later
    ├── NotFound                   a pipeline, run, stage, job or artifact does not exist
    ├── UnsafePath                 a path built from a name would leave its folder
    ├── RepoError                  a repository, branch or commit cannot be checked out
    ├── RunnerError                the container engine cannot be used
    │   └── EngineUnavailable      no Docker engine answers
    ├── StoreError                 the history store cannot be read or written
    └── ServerError                a remote cicd server refused or failed a request

Each message is one line that names the thing and where it is; the CLI prints it as is.
"""

from __future__ import annotations

from dataclasses import dataclass


class CicdError(Exception):
    """Base of every error cicd raises on purpose."""


class PipelineError(CicdError):
    """A pipeline file cannot be used."""


@dataclass(frozen=True, order=True)
class Problem:
    """One validation problem at a 1-based position of a file."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class PipelineInvalid(PipelineError):
    """A pipeline file failed validation; ``problems`` holds every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class UsageError(CicdError):
    """The caller asked for something that makes no sense (exit status 2)."""


class NotFound(CicdError):
    """A pipeline, run, stage, job or artifact does not exist."""


class ServerBusy(CicdError):
    """A server is at one of its limits (queued runs, log followers); the request may be retried."""


class UnsafePath(CicdError):
    """A path built from a name (job, stage, pipeline) would resolve outside its folder."""


class RepoError(CicdError):
    """A repository, branch or commit cannot be checked out."""


class RunnerError(CicdError):
    """The container engine cannot be used."""


class EngineUnavailable(RunnerError):
    """No Docker engine answers."""


class StoreError(CicdError):
    """The history store cannot be read or written."""


class ServerError(CicdError):
    """A remote cicd server refused or failed a request."""
