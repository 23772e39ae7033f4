"""``cicd debug``: find a failed job's snapshot (``backend.debugging``) and open a shell in it.

The shell runs where the job ran: a snapshot is an image in that machine's Docker engine and a
folder of its ``CICD_HOME``. So a run of a server (``CICD_SERVER``) or of another machine is
refused with one line saying so.

A session is a container of the snapshot's image holding a copy of the job's workspace
(``backend.runner.postmortem.open_session``), with the job's variables. Secret values were never
stored: each secret the job had is set to ``****`` in the session, unless given again with
``--secret NAME`` (read from this process's environment, as ``cicd run --secret``); a given one
reaches the session's commands through ``docker exec``, never the container's configuration.
The container, and the copy in it, is removed when the session ends.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.debugging import SnapshotRecord, find
from backend.errors import NotFound, RunnerError, UsageError
from backend.masking import MASK
from backend.schemas import Status
from backend.settings import Settings

LABEL_SESSION = "cicd.debug.session"  # on a session's container: the snapshot's id
# the user's shell: bash when the image has it, else sh
SHELL = "if command -v bash >/dev/null 2>&1; then exec bash; fi; exec sh"
_KEEP_HINT = "run it with `cicd run --keep-failed` to keep every failed job"


@dataclass
class Session:
    """An open debug container of one snapshot; ``secrets`` are the values given again."""

    client: Any
    container: str
    record: SnapshotRecord
    secrets: dict[str, str] = field(default_factory=dict)

    def run(self, command: str) -> int:
        """Run ``sh -c command`` in the job's start directory, no terminal; its exit code."""
        from backend.runner.postmortem import run_command

        return run_command(
            self.client, self.container, command, workdir=self.record.workdir, env=self.secrets
        )

    def shell_argv(self, docker_cli: str) -> list[str]:
        """The ``docker exec -it`` command line of an interactive shell in the session.

        The docker CLI does what a terminal needs (raw mode, window size, signals) that the SDK
        leaves to its caller. Secrets are named (``-e NAME``), never given on the command line:
        the CLI reads their values from its environment, which the caller passes.
        """
        named = [arg for name in sorted(self.secrets) for arg in ("-e", name)]
        workdir = ["-w", self.record.workdir]
        return [docker_cli, "exec", "-it", *workdir, *named, self.container, "sh", "-c", SHELL]


def locate(settings: Settings, pipeline: str, number: int, job: str) -> SnapshotRecord:
    """The snapshot of job ``job`` of run ``pipeline#number``; one-line errors otherwise."""
    if settings.server:
        raise UsageError(
            f"cicd debug opens a shell where the job ran, with its Docker engine: not through "
            f"the server at {settings.server} (unset CICD_SERVER, and run it on that machine)"
        )
    from backend.service import Service

    service = Service(settings)
    name = f"{pipeline}#{number}"
    found = service.job(pipeline, number, job)  # NotFound names an unknown run or job
    worker = service.run(pipeline, number).worker or ""
    host = worker.partition("/")[0]
    if host and host != socket.gethostname():
        raise UsageError(
            f"{name} ran on {host}: cicd debug opens a shell on the machine that ran the job "
            "(run it there)"
        )
    record = find(settings.debug_dir, pipeline, number, job)
    if record is not None:
        return record
    if found.status is not Status.FAILED:
        raise NotFound(
            f"job '{job}' of {name} is {found.status.value}: only failed jobs are kept for "
            "cicd debug"
        )
    raise NotFound(
        f"no snapshot of job '{job}' of {name}: only the last failed job of each pipeline is "
        f"kept, for 7 days ({_KEEP_HINT})"
    )


def session_env(record: SnapshotRecord, given: dict[str, str]) -> dict[str, str]:
    """The session container's environment: the job's variables, each secret not given again
    masked (``****``); the given ones are not in it (they go with each ``docker exec``)."""
    masked = {name: MASK for name in record.secrets if name not in given}
    return {**record.env, **masked}


@contextlib.contextmanager
def open_session(
    debug_dir: Path, record: SnapshotRecord, secrets: dict[str, str]
) -> Iterator[Session]:
    """A session of ``record`` (kept in ``debug_dir``), removed (its container and workspace
    copy) on the way out."""
    from backend.runner.base import LABEL_JOB, LABEL_MANAGED, LABEL_RUN
    from backend.runner.docker import DockerRunner
    from backend.runner.postmortem import WORKSPACE_TAR, close_session, image_exists
    from backend.runner.postmortem import open_session as start

    runner = DockerRunner()
    runner.check()
    client = runner.engine()
    if not image_exists(client, record.image):
        raise NotFound(
            f"the snapshot image {record.image} of job '{record.job}' of "
            f"{record.pipeline}#{record.run} is gone (removed outside cicd; {_KEEP_HINT})"
        )
    tar = debug_dir / record.id / WORKSPACE_TAR
    labels = {
        LABEL_MANAGED: "1",
        LABEL_RUN: f"debug-{record.id}",  # not the old run's: nothing reaps it as the run's
        LABEL_JOB: record.job,
        LABEL_SESSION: record.id,
    }
    container = start(
        client,
        record.image,
        tar,
        workdir=record.workdir,
        env=session_env(record, secrets),
        labels=labels,
    )
    try:
        yield Session(client, container, record, dict(secrets))
    finally:
        close_session(client, container)


def docker_cli() -> str:
    """The ``docker`` program an interactive session needs; ``RunnerError`` when missing."""
    found = shutil.which("docker")
    if found is None:
        raise RunnerError(
            "an interactive cicd debug shell needs the docker CLI on PATH (docker exec -it); "
            "--command CMD runs one command without it"
        )
    return found

