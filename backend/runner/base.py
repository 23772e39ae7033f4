"""The interface between the flow and whatever runs a job's script.

``DockerRunner`` (docker.py) is the real one; ``FakeRunner`` (fake.py) runs scripted results in
memory so flow, service and API tests need no Docker engine.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from backend.pipeline.model import Resources
from backend.runs import PullPolicy  # a request's value; here for the runners

LABEL_RUN = "cicd.run"
LABEL_JOB = "cicd.job"
LABEL_MANAGED = "cicd.managed"
LABEL_DEBUG = "cicd.debug"  # a failed job's snapshot image: the hash of its CICD_HOME/debug
LABEL_DEBUG_DIR = "cicd.debug.dir"  # and that folder, to find images of a CICD_HOME now gone
AFTER_SCRIPT_TIMEOUT = 300.0  # GitLab's own limit on after_script, in seconds
# a secret becomes a shell variable of the job (``export NAME=...``): only such names can
_SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def secret_problem(name: str, value: str) -> str | None:
    """Why secret ``name`` cannot be handed to a job's shell, or None when it can.

    Names must be shell variable names, and values cannot hold a NUL character (no shell
    variable can). Callers refuse such a secret rather than fall back to the container's
    environment, which Docker writes to disk.
    """
    if not _SHELL_NAME.fullmatch(name):
        shown = name if name.isprintable() else repr(name)
        return (
            f"secret name '{shown}' is not a shell variable name "
            "(letters, digits and _, not starting with a digit)"
        )
    if "\0" in value:
        return f"secret '{name}' holds a NUL character, which no shell variable can"
    return None


class CancelEvent(threading.Event):
    """A run's cancel event that also counts how often a stop was asked for.

    The first request cancels: running scripts are stopped, and their after_scripts still run
    (GitLab runs them on cancel, to clean up). A second request stops those too.
    """

    def __init__(self) -> None:
        super().__init__()
        self._requests = 0
        self._count_lock = threading.Lock()

    @property
    def requests(self) -> int:
        """How many times ``set`` was called."""
        return self._requests

    def set(self) -> None:
        """Ask for a stop (again)."""
        with self._count_lock:
            self._requests += 1
        super().set()


def stop_requests(cancel: threading.Event) -> int:
    """How many stops were asked of ``cancel``: a plain ``threading.Event`` counts at most one."""
    if isinstance(cancel, CancelEvent):
        return cancel.requests
    return 1 if cancel.is_set() else 0


class Outcome(StrEnum):
    """How a job's container ended."""

    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CANCELED = "CANCELED"


@dataclass(frozen=True)
class ServiceSpec:
    """A container started beside a job (GitLab ``services:``), on the job's own network.

    It is reachable by ``alias`` (GitLab also accepts several, separated by commas or spaces)
    and by the host names GitLab derives from its image (``services.hostnames``).
    """

    image: str
    alias: str | None = None
    entrypoint: list[str] | None = None  # None: the image's; [""]: none, as with docker run
    command: list[str] | None = None  # None: the image's CMD
    # the job's variables come first, then these (GitLab hands job variables to services)
    variables: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SnapshotTarget:
    """Where a runner keeps a job that FAILED, for ``cicd debug`` (``backend.debugging``).

    Before the failed job's container is removed, it is committed as ``image`` (with
    ``labels``) and its ``/workspace`` copied into ``directory`` as a tar file; nothing is done
    for a job that succeeds or is canceled.
    """

    image: str  # repository:tag, derived from ids (never from a job's name)
    directory: Path
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class JobSpec:
    """Everything needed to run one job's script in a container."""

    run_id: str  # unique id of the run, used in container labels
    job: str
    stage: str
    image: str
    script: list[str]
    env: dict[str, str]
    workspace: Path
    timeout: float | None = None
    # values that must never be written to disk (Docker keeps a container's env in its state
    # files) nor reach the container's configuration: the runner hands them to the job's
    # shell through its stdin instead
    secrets: dict[str, str] = field(default_factory=dict)
    # GitLab's after_script: run in a new shell of the same container once the script has
    # ended, whatever happened to it, with CI_JOB_STATUS set; it never changes the outcome
    after_script: list[str] = field(default_factory=list)
    after_script_timeout: float = AFTER_SCRIPT_TIMEOUT
    # started before the script on a network of the job's own, removed with the job
    services: list[ServiceSpec] = field(default_factory=list)
    # GitLab's image:entrypoint: the image's entrypoint is replaced by it and the job's shell
    # becomes its arguments (it must exec them); None keeps cicd's own ``sh`` entrypoint
    entrypoint: list[str] | None = None
    # how the job's image was made available (prepare_images); named in a missing-image error
    pull_policy: PullPolicy = PullPolicy.IF_NOT_PRESENT
    # a Docker volume mounted at /workspace instead of binding ``workspace``: an isolated job's
    # overlay of the run's checkout (backend.jobspace); None binds ``workspace``
    workspace_volume: str | None = None
    # limits Docker enforces on the job's container (``resources:``); none by default
    resources: Resources = field(default_factory=Resources)
    # snapshot the job here if it fails (cicd debug); None: never
    snapshot: SnapshotTarget | None = None


@dataclass
class JobResult:
    """What happened to one attempt of a job."""

    outcome: Outcome
    exit_code: int | None
    started_at: datetime
    finished_at: datetime
    error: str | None = None  # one line: timeout, missing image, cannot start, ...
    log_lines: int = 0
    # what its container used (backend.runner.usage); None when not measured
    memory_peak_bytes: int | None = None
    cpu_seconds: float | None = None
    # the image id of the snapshot taken because it failed (JobSpec.snapshot); None: none
    snapshot: str | None = None


LineSink = Callable[[str], None]


class Runner(Protocol):
    """Runs job scripts. Implementations must be safe to call from many threads at once."""

    def check(self) -> None:
        """Raise ``EngineUnavailable`` when the engine cannot be reached."""

    def ensure_images(self, images: Iterable[str], policy: PullPolicy) -> dict[str, str | None]:
        """Make images available, in parallel; map each image to None or a one-line error."""

    def run_job(self, spec: JobSpec, on_line: LineSink, cancel: threading.Event) -> JobResult:
        """Run the script, calling ``on_line`` for each output line as it comes.

        Returns when the script ends, its timeout passes, or ``cancel`` is set (the container is
        then killed and the outcome is CANCELED). The container is gone when this returns.
        """

    def remove_run_containers(self, run_id: str) -> int:
        """Remove every container of a run (any state, services included) and its networks;
        return how many containers there were."""


@dataclass
class FakeOutcome:
    """A scripted result for ``FakeRunner``."""

    exit_code: int = 0
    lines: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # what the job's container "used", as the Docker runner measures it (None: not measured)
    memory_peak_bytes: int | None = None
    cpu_seconds: float | None = None
