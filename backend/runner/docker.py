"""The Docker runner: each job's script in its own container.

With its helpers (``engine``, ``exec_shell``, ``images``, ``services``) and its output reader
(``backend.runner.output``), the only code that imports the docker SDK.

A job's container is created with the run's workspace bind-mounted at ``/workspace`` (also the
working directory), the job's environment, and labels naming the run and the job. Its entrypoint
is replaced by ``sh -e -c <script>`` so that the script runs the same way in every image and the
first failing command fails the job; each command is echoed first as ``$ command``, as GitLab does,
and stderr is merged into stdout so lines keep the order they were written in. A job with an
``image:entrypoint`` (GitLab) gets that entrypoint instead, and the same ``sh`` command line as
its arguments, as GitLab's Docker executor does: the entrypoint must run them (``exec "$@"``);
``[""]`` means no entrypoint at all. An image without ``sh`` fails the job with one line.

We attach to the container before starting it, so no output is lost however short the job, and
read stdout and stderr line by line in a thread while the calling thread watches the job's
timeout and cancel event. Whatever happens, the container is removed before ``run_job`` returns,
and so are the job's services and their network (``services.py``), started before it.

Secrets never enter the container's configuration (which Docker keeps on disk) nor any file:
they go through the container's stdin (``backend.runner.stdin``), and a secret that cannot go
that way fails the job rather than falling back to the environment.

A job with an ``after_script`` runs its script and after_script as ``docker exec`` shells of an
idle container instead (``exec_shell.py`` says why and how).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import docker
from docker.errors import ImageNotFound

from backend.errors import EngineUnavailable, RunnerError
from backend.runner.base import (
    LABEL_MANAGED,
    LABEL_RUN,
    JobResult,
    JobSpec,
    LineSink,
    Outcome,
    PullPolicy,
)
from backend.runner.engine import (
    ENGINE_ERRORS,
    WORKDIR,
    is_connection_error,
    labels,
    missing_shell,
    now,
    reason,
    remove_container,
    remove_network,
    seconds,
    unique_name,
)
from backend.runner.exec_shell import POLL_SECONDS, ScriptThenAfter, shell_script
from backend.runner.images import ensure_image, image_missing
from backend.runner.output import OutputReader
from backend.runner.postmortem import take_snapshot
from backend.runner.services import Services, run_networks
from backend.runner.stdin import SOURCE_LINE, SecretsInput, secrets_payload
from backend.runner.usage import Usage, UsageMeter

__all__ = ["DEFAULT_DOCKER_HOST", "WORKDIR", "DockerRunner", "shell_script"]

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
_DRAIN_SECONDS = 5.0  # how long output may keep arriving after the container ended


class DockerRunner:
    """Runs job scripts in containers of one Docker engine; safe to share between threads.

    ``base_url`` is the engine's address; by default ``DOCKER_HOST`` and the other ``DOCKER_*``
    variables are read as Docker itself reads them. The client is made on first use, so building
    a runner never fails; ``check()`` says whether the engine answers.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        max_pool_size: int = 100,
        api_timeout: float = 60.0,
        echo_commands: bool = True,
        pull_workers: int = 8,
    ) -> None:
        self.base_url = base_url
        self.echo_commands = echo_commands
        self._max_pool_size = max_pool_size
        self._api_timeout = api_timeout
        self._pull_workers = pull_workers
        self._client: docker.DockerClient | None = None
        self._client_lock = threading.Lock()

    @property
    def address(self) -> str:
        """Where the engine is expected, for messages."""
        return self.base_url or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST

    # -- Runner protocol ----------------------------------------------------------------------

    def check(self) -> None:
        """Raise ``EngineUnavailable`` when the engine cannot be reached."""
        client = self._docker()
        try:
            client.ping()
        except ENGINE_ERRORS as exc:
            raise self._unavailable(exc) from exc

    def ensure_images(self, images: Iterable[str], policy: PullPolicy) -> dict[str, str | None]:
        """Make images available, in parallel; map each image to None or a one-line error.

        ``if-not-present`` pulls only missing images, ``always`` pulls every image and fails it
        when the pull fails (even if an older copy is present), ``never`` only looks.
        Raises ``EngineUnavailable`` when the engine cannot be reached at all.
        """
        wanted = list(dict.fromkeys(images))
        if not wanted:
            return {}
        client = self._docker()
        policy = PullPolicy(policy)
        workers = max(1, min(self._pull_workers, len(wanted)))
        with ThreadPoolExecutor(workers, thread_name_prefix="cicd-image") as pool:
            errors = pool.map(lambda image: ensure_image(client, image, policy), wanted)
            return dict(zip(wanted, errors, strict=True))

    def run_job(self, spec: JobSpec, on_line: LineSink, cancel: threading.Event) -> JobResult:
        """Run the script in a new container, streaming its output lines to ``on_line``.

        The job's services start first, on a network of the job's own. Returns when the script
        ends (SUCCESS on exit 0, FAILED otherwise), its timeout passes (FAILED), or ``cancel``
        is set (CANCELED); the container is killed in the last two cases and removed in every
        case, with the services and their network. Docker errors never escape: they make a
        FAILED result whose ``error`` says what went wrong. An exception raised by ``on_line``
        fails the job too, and so does a secret that cannot be handed over (a name that is not
        a shell name).
        """
        started = now()
        if cancel.is_set():
            return JobResult(Outcome.CANCELED, None, started, now(), error="canceled before start")
        try:
            payload = secrets_payload(spec.secrets) if spec.secrets else None
        except ValueError as exc:  # never the environment instead: Docker keeps it on disk
            error = f"job '{spec.job}': {exc}"
            return JobResult(Outcome.FAILED, None, started, now(), error=error)
        attempt = _Attempt(spec, started)
        try:
            client = attempt.client = self._docker()
            attempt.services = Services(client, spec, on_line)
            if spec.services:
                problem = attempt.services.start()
                if problem is not None:
                    return attempt.failed(problem)
            if spec.after_script:
                result = self._run_shells(client, spec, on_line, cancel, payload, attempt)
            else:
                result = self._run_main(client, spec, on_line, cancel, payload, attempt)
            if result.outcome is Outcome.FAILED and spec.snapshot is not None:
                result.snapshot = attempt.snapshot(on_line)  # before the container goes
            return result
        except EngineUnavailable as exc:
            return attempt.failed(str(exc))
        except ImageNotFound:
            return attempt.failed(image_missing(spec))
        except (*ENGINE_ERRORS, OSError) as exc:  # OSError: a socket of the secrets or an exec
            if is_connection_error(exc):
                return attempt.failed(str(self._unavailable(exc)))
            if attempt.starting and missing_shell(exc) and '"sh"' in str(exc):
                return attempt.failed(f"image '{spec.image}' has no /bin/sh: {reason(exc)}")
            return attempt.failed(f"{attempt.step}: {reason(exc)}")
        finally:
            attempt.close()

    def remove_run_containers(self, run_id: str) -> int:
        """Remove every container of a run (any state) and its networks; return how many
        containers there were (services included)."""
        client = self._docker()
        filters = {"label": [f"{LABEL_MANAGED}=1", f"{LABEL_RUN}={run_id}"]}
        try:
            found = client.api.containers(all=True, filters=filters)
            for container in found:
                remove_container(client, container["Id"])
            for network in run_networks(client, run_id):  # free once its containers are gone
                remove_network(client, network)
        except ENGINE_ERRORS as exc:
            if is_connection_error(exc):
                raise self._unavailable(exc) from exc
            raise RunnerError(f"cannot list the containers of run {run_id}: {reason(exc)}") from exc
        return len(found)

    # -- parts --------------------------------------------------------------------------------

    def engine(self) -> docker.DockerClient:
        """The shared docker client, for the runner's helper modules (``postmortem``)."""
        return self._docker()

    def _docker(self) -> docker.DockerClient:
        """The shared client, made on first use (its connection pool serves every thread)."""
        with self._client_lock:
            if self._client is None:
                options: dict[str, Any] = {
                    "timeout": self._api_timeout,
                    "max_pool_size": self._max_pool_size,
                }
                try:
                    if self.base_url:
                        self._client = docker.DockerClient(base_url=self.base_url, **options)
                    else:
                        self._client = docker.DockerClient.from_env(**options)
                except ENGINE_ERRORS as exc:
                    raise self._unavailable(exc) from exc
            return self._client

    def _unavailable(self, exc: BaseException) -> EngineUnavailable:
        return EngineUnavailable(f"cannot reach the Docker engine at {self.address}: {reason(exc)}")

    def _run_main(
        self,
        client: docker.DockerClient,
        spec: JobSpec,
        on_line: LineSink,
        cancel: threading.Event,
        payload: bytes | None,
        attempt: _Attempt,
    ) -> JobResult:
        """The script as the container's main process: ``sh -e -c SCRIPT``."""
        attempt.step = f"cannot create the container of job '{spec.job}'"
        script = shell_script(spec.script, echo=self.echo_commands)
        if payload is not None:  # the values come through stdin, never in the configuration
            script = f"{SOURCE_LINE}\n{script}"
        container = attempt.container = self._create(
            client, spec, ["sh", "-e", "-c", script], attempt, stdin=payload is not None
        )
        attempt.step = f"cannot attach to the container of job '{spec.job}'"
        reader = attempt.reader = OutputReader(
            client, container, on_line, spec.job, spec.secrets.values()
        )
        if payload is not None:
            attempt.stdin = SecretsInput(client, container)
        attempt.step = f"container of job '{spec.job}' cannot start"
        attempt.starting = True
        client.api.start(container)
        attempt.starting = False
        attempt.meter = UsageMeter(client, container)
        if attempt.stdin is not None and payload is not None:
            attempt.step = f"cannot hand the secrets to the container of job '{spec.job}'"
            attempt.stdin.send(payload)  # the shell waits for them before its first command
        attempt.step = f"lost the container of job '{spec.job}'"
        outcome, exit_code, error = self._watch(client, container, spec, cancel, reader)
        reader.finish(_DRAIN_SECONDS)
        if reader.error is not None and outcome is Outcome.SUCCESS:
            outcome, error = Outcome.FAILED, reader.error
        return attempt.result(outcome, exit_code, error)

    def _run_shells(
        self,
        client: docker.DockerClient,
        spec: JobSpec,
        on_line: LineSink,
        cancel: threading.Event,
        payload: bytes | None,
        attempt: _Attempt,
    ) -> JobResult:
        """Script and after_script as ``docker exec`` shells of an idle container.

        The container's main process only keeps it alive: ``sh`` reading a stdin that stays
        open and empty (nobody attaches to it), so any image with a shell works.
        """
        attempt.step = f"cannot create the container of job '{spec.job}'"
        container = attempt.container = self._create(client, spec, ["sh"], attempt, stdin=True)
        attempt.step = f"container of job '{spec.job}' cannot start"
        attempt.starting = True
        client.api.start(container)
        attempt.starting = False
        attempt.meter = UsageMeter(client, container)
        shells = attempt.shells = ScriptThenAfter(
            client, container, spec, on_line, payload, echo=self.echo_commands
        )
        try:
            outcome, exit_code, error = shells.run(cancel)
        finally:
            attempt.step = shells.step
        return attempt.result(outcome, exit_code, error)

    def _create(
        self,
        client: docker.DockerClient,
        spec: JobSpec,
        command: list[str],
        attempt: _Attempt,
        *,
        stdin: bool,
    ) -> str:
        """The job's container running ``command``: as its entrypoint, or as the arguments of
        the job's ``image:entrypoint``; on the services' network when the job has one."""
        source = spec.workspace_volume or str(spec.workspace.resolve())  # volume: an overlay
        binds = {source: {"bind": WORKDIR, "mode": "rw"}}
        network = attempt.services.network if attempt.services is not None else None
        limits: dict[str, Any] = {}
        if spec.resources.cpus is not None:
            limits["nano_cpus"] = round(spec.resources.cpus * 1e9)
        if spec.resources.memory is not None:  # and no swap beyond it
            limits["mem_limit"] = limits["memswap_limit"] = spec.resources.memory
        host_config = client.api.create_host_config(
            binds=binds, network_mode=network, **limits
        )
        if spec.entrypoint is None:
            entrypoint, cmd = command, None
        else:
            entrypoint, cmd = list(spec.entrypoint) or [""], command
        created = client.api.create_container(
            image=spec.image,
            entrypoint=entrypoint,
            command=cmd,
            environment=dict(spec.env),
            working_dir=WORKDIR,
            labels=labels(spec),
            name=unique_name(spec),
            host_config=host_config,
            stdin_open=stdin,  # also StdinOnce: stdin ends when our one attach lets go
            tty=False,
        )
        return str(created["Id"])

    def _watch(
        self,
        client: docker.DockerClient,
        container: str,
        spec: JobSpec,
        cancel: threading.Event,
        reader: OutputReader,
    ) -> tuple[Outcome, int | None, str | None]:
        """Wait for the container to end, killing it on timeout, cancel or a failing sink."""
        waiter = _Waiter(client, container)
        deadline = None if spec.timeout is None else time.monotonic() + spec.timeout
        while not waiter.done.wait(POLL_SECONDS):
            if cancel.is_set():
                _kill(client, container, waiter)
                return Outcome.CANCELED, None, None
            if deadline is not None and time.monotonic() >= deadline:
                _kill(client, container, waiter)
                return Outcome.FAILED, None, f"timed out after {seconds(spec.timeout)}"
            if reader.error is not None:
                _kill(client, container, waiter)
                return Outcome.FAILED, None, reader.error
        if waiter.failure is not None:
            raise waiter.failure
        exit_code = waiter.exit_code
        return (Outcome.SUCCESS if exit_code == 0 else Outcome.FAILED), exit_code, None


class _Attempt:
    """What one ``run_job`` made so far, to report on and to remove whatever happens."""

    def __init__(self, spec: JobSpec, started: datetime) -> None:
        self.spec = spec
        self.started = started
        self.step = "cannot reach the Docker engine"
        self.starting = False  # the job's container is being started: a missing sh shows here
        self.client: docker.DockerClient | None = None
        self.services: Services | None = None
        self.container: str | None = None
        self.reader: OutputReader | None = None
        self.stdin: SecretsInput | None = None
        self.shells: ScriptThenAfter | None = None
        self.meter: UsageMeter | None = None

    @property
    def lines(self) -> int:
        """Lines the job showed so far."""
        if self.shells is not None:
            return self.shells.lines
        return self.reader.lines if self.reader is not None else 0

    def result(self, outcome: Outcome, exit_code: int | None, error: str | None) -> JobResult:
        """The job's result, with a warning first for each service that ended early.

        A failure of a container the kernel killed for memory says so (``out of memory``).
        """
        usage = self.usage()
        if self.services is not None:
            self.services.warn_ended()
        if outcome is Outcome.FAILED and error is None and self.oom_killed():
            error = oom_reason(self.spec)
        return JobResult(
            outcome, exit_code, self.started, now(), error, self.lines, *_fields(usage)
        )

    def failed(self, error: str) -> JobResult:
        """A FAILED result that never reached an exit code."""
        usage = self.usage()
        return JobResult(
            Outcome.FAILED, None, self.started, now(), error, self.lines, *_fields(usage)
        )

    def snapshot(self, on_line: LineSink) -> str | None:
        """Keep the failed job for ``cicd debug`` (``JobSpec.snapshot``); the image id, or None.

        A snapshot that cannot be made is one warning line in the job's log, never a failure.
        """
        target = self.spec.snapshot
        if target is None or self.client is None or self.container is None:
            return None
        try:
            return take_snapshot(self.client, self.container, target)
        except (*ENGINE_ERRORS, OSError) as exc:
            on_line(f"cicd: warning: no snapshot of the failed job for cicd debug: {reason(exc)}")
            return None

    def usage(self) -> Usage:
        """Stop measuring the container; what it used."""
        return self.meter.stop() if self.meter is not None else Usage()

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of the job's container for want of memory."""
        if self.client is None or self.container is None:
            return False
        if self.meter is not None and (self.meter.oom_kills() or 0) > 0:
            return True  # a script run as an exec shell: Docker's flag misses it
        try:
            state = self.client.api.inspect_container(self.container).get("State") or {}
        except ENGINE_ERRORS:
            return False
        return bool(state.get("OOMKilled"))

    def close(self) -> None:
        """Stop reading, then remove the container, the services and the network; never raises."""
        if self.meter is not None:
            self.meter.stop()
        if self.stdin is not None:
            self.stdin.close()
        if self.reader is not None:
            self.reader.close()
        if self.shells is not None:
            self.shells.close()
        job = [self.container] if self.container is not None else []
        if self.services is not None:
            self.services.remove(*job)
        elif self.client is not None and job:
            remove_container(self.client, job[0])


class _Waiter:
    """Blocks on the engine's wait for a container in a thread, so the caller can poll."""

    def __init__(self, client: docker.DockerClient, container: str) -> None:
        self.done = threading.Event()
        self.exit_code: int | None = None
        self.failure: BaseException | None = None
        self._client = client
        self._container = container
        threading.Thread(target=self._run, name="cicd-wait", daemon=True).start()

    def _run(self) -> None:
        try:
            # timeout=None: a job may run for hours; the engine answers when it ends.
            status = self._client.api.wait(self._container, timeout=None)
            self.exit_code = int(status["StatusCode"])
        except BaseException as exc:
            self.failure = exc
        finally:
            self.done.set()


def oom_reason(spec: JobSpec) -> str:
    """``out of memory (OOM killed): limit 64m``: why a job killed for memory failed."""
    limit = spec.resources.memory_text
    if limit is None and spec.resources.memory is not None:
        limit = f"{spec.resources.memory} bytes"
    return "out of memory (OOM killed)" + (f": limit {limit}" if limit else "")


def _fields(usage: Usage) -> tuple[int | None, float | None]:
    return usage.memory_peak_bytes, usage.cpu_seconds


def _kill(client: docker.DockerClient, container: str, waiter: _Waiter) -> None:
    try:
        client.api.kill(container)
    except ENGINE_ERRORS:
        pass  # already ended, or going: the forced removal finishes the job
    waiter.done.wait(_DRAIN_SECONDS)
