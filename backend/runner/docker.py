"""The Docker runner: each job's script in its own container.

With its output reader (``backend.runner.output``), the only code that imports the docker SDK.

A job's container is created with the run's workspace bind-mounted at ``/workspace`` (also the
working directory), the job's environment, and labels naming the run and the job. Its entrypoint
is replaced by ``sh -e -c <script>`` so that the script runs the same way in every image and the
first failing command fails the job; each command is echoed first as ``$ command``, as GitLab does,
and stderr is merged into stdout so lines keep the order they were written in.

We attach to the container before starting it, so no output is lost however short the job, and
read stdout and stderr line by line in a thread while the calling thread watches the job's
timeout and cancel event. Whatever happens, the container is removed before ``run_job`` returns.

Secrets never enter the container's configuration (which Docker keeps on disk) nor any file:
they go through the container's stdin (``backend.runner.stdin``), and a secret that cannot go
that way fails the job rather than falling back to the environment.

A job with an ``after_script`` (GitLab) runs differently, because the after_script needs the
same container after the script has ended, however it ended (a timeout or cancel included): a
script that is the container's main process takes the container with it when it is killed.
So the container's main process is an idle ``sh`` waiting on an open stdin nobody writes to,
and the script and then the after_script each run as a ``docker exec`` shell (``_Shell``): the
after_script starts only once every line of the script's output is read (order kept), each shell
gets the secrets through its own exec stdin exactly as above (never the exec's environment), and
both outputs go through the same reader and masking. A timeout or cancel stops the script with
``kill -KILL -1`` run in the container, which kills every process but the idle main one, so the
container stays for the after_script. The container is removed in every case, as above.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import docker
import requests
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.utils.socket import demux_adaptor, frames_iter

from backend.errors import EngineUnavailable, RunnerError
from backend.runner.base import (
    LABEL_JOB,
    LABEL_MANAGED,
    LABEL_RUN,
    JobResult,
    JobSpec,
    LineSink,
    Outcome,
    PullPolicy,
    stop_requests,
)
from backend.runner.output import OutputReader
from backend.runner.stdin import SOURCE_LINE, SecretsInput, secrets_payload

WORKDIR = "/workspace"
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
_POLL_SECONDS = 0.05  # how often a running job looks at its timeout and cancel event
_DRAIN_SECONDS = 5.0  # how long output may keep arriving after the container ended
_ENGINE_ERRORS = (DockerException, requests.exceptions.RequestException)
_KILL_ALL = ["sh", "-c", "kill -KILL -1"]  # every process but the caller and the idle PID 1
_LOOK_SECONDS = 0.5  # how often a shell whose output is still open is asked whether it ended
_STOP_SECONDS = 5.0  # how long a killed shell may take to end before the job gives up on it


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
        except _ENGINE_ERRORS as exc:
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
            errors = pool.map(lambda image: _ensure_image(client, image, policy), wanted)
            return dict(zip(wanted, errors, strict=True))

    def run_job(self, spec: JobSpec, on_line: LineSink, cancel: threading.Event) -> JobResult:
        """Run the script in a new container, streaming its output lines to ``on_line``.

        Returns when the script ends (SUCCESS on exit 0, FAILED otherwise), its timeout passes
        (FAILED), or ``cancel`` is set (CANCELED); the container is killed in the last two cases
        and removed in every case. Docker errors never escape: they make a FAILED result whose
        ``error`` says what went wrong. An exception raised by ``on_line`` fails the job too,
        and so does a secret that cannot be handed over (a name that is not a shell name).
        """
        started = _now()
        if cancel.is_set():
            return JobResult(Outcome.CANCELED, None, started, _now(), error="canceled before start")
        try:
            payload = secrets_payload(spec.secrets) if spec.secrets else None
        except ValueError as exc:  # never the environment instead: Docker keeps it on disk
            error = f"job '{spec.job}': {exc}"
            return JobResult(Outcome.FAILED, None, started, _now(), error=error)
        if spec.after_script:
            return self._run_with_after_script(spec, on_line, cancel, payload, started)
        client: docker.DockerClient | None = None
        container: str | None = None
        stdin: SecretsInput | None = None
        reader: OutputReader | None = None
        step = "cannot reach the Docker engine"
        try:
            client = self._docker()
            step = f"cannot create the container of job '{spec.job}'"
            container = self._create(client, spec, with_secrets=payload is not None)
            step = f"cannot attach to the container of job '{spec.job}'"
            reader = OutputReader(client, container, on_line, spec.job, spec.secrets.values())
            if payload is not None:
                stdin = SecretsInput(client, container)
            step = f"container of job '{spec.job}' cannot start"
            client.api.start(container)
            if stdin is not None and payload is not None:
                step = f"cannot hand the secrets to the container of job '{spec.job}'"
                stdin.send(payload)  # the shell waits for them before its first command
            step = f"lost the container of job '{spec.job}'"
            outcome, exit_code, error = self._watch(client, container, spec, cancel, reader)
            reader.finish(_DRAIN_SECONDS)
            if reader.error is not None and outcome is Outcome.SUCCESS:
                outcome, error = Outcome.FAILED, reader.error
            return JobResult(outcome, exit_code, started, _now(), error, reader.lines)
        except EngineUnavailable as exc:
            return JobResult(Outcome.FAILED, None, started, _now(), error=str(exc))
        except ImageNotFound:
            error = f"image '{spec.image}' not found locally"
            return JobResult(Outcome.FAILED, None, started, _now(), error=error)
        except (*_ENGINE_ERRORS, OSError) as exc:  # OSError: the stdin socket of the secrets
            if _is_connection_error(exc):
                error = str(self._unavailable(exc))
            else:
                error = f"{step}: {_reason(exc)}"
            lines = reader.lines if reader is not None else 0
            return JobResult(Outcome.FAILED, None, started, _now(), error=error, log_lines=lines)
        finally:
            if stdin is not None:
                stdin.close()
            if reader is not None:
                reader.close()
            if client is not None and container is not None:
                _remove(client, container)

    def remove_run_containers(self, run_id: str) -> int:
        """Remove every container of a run (any state); return how many there were."""
        client = self._docker()
        labels = [f"{LABEL_MANAGED}=1", f"{LABEL_RUN}={run_id}"]
        try:
            found = client.api.containers(all=True, filters={"label": labels})
        except _ENGINE_ERRORS as exc:
            if _is_connection_error(exc):
                raise self._unavailable(exc) from exc
            raise RunnerError(
                f"cannot list the containers of run {run_id}: {_reason(exc)}"
            ) from exc
        for container in found:
            _remove(client, container["Id"])
        return len(found)

    # -- parts --------------------------------------------------------------------------------

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
                except _ENGINE_ERRORS as exc:
                    raise self._unavailable(exc) from exc
            return self._client

    def _unavailable(self, exc: BaseException) -> EngineUnavailable:
        return EngineUnavailable(
            f"cannot reach the Docker engine at {self.address}: {_reason(exc)}"
        )

    def _create(self, client: docker.DockerClient, spec: JobSpec, *, with_secrets: bool) -> str:
        binds = {str(spec.workspace.resolve()): {"bind": WORKDIR, "mode": "rw"}}
        script = shell_script(spec.script, echo=self.echo_commands)
        if with_secrets:  # the values come through stdin, never in this configuration
            script = f"{SOURCE_LINE}\n{script}"
        host_config = client.api.create_host_config(binds=binds)
        created = client.api.create_container(
            image=spec.image,
            entrypoint=["sh", "-e", "-c", script],
            environment=dict(spec.env),
            working_dir=WORKDIR,
            labels={LABEL_MANAGED: "1", LABEL_RUN: spec.run_id, LABEL_JOB: spec.job},
            name=_container_name(spec),
            host_config=host_config,
            stdin_open=with_secrets,  # also StdinOnce: stdin ends when our one attach lets go
            tty=False,
        )
        return str(created["Id"])

    def _run_with_after_script(
        self,
        spec: JobSpec,
        on_line: LineSink,
        cancel: threading.Event,
        payload: bytes | None,
        started: datetime,
    ) -> JobResult:
        """``run_job`` for a job with an after_script: both run as shells of an idle container."""
        client: docker.DockerClient | None = None
        container: str | None = None
        shells: list[_Shell] = []
        step = "cannot reach the Docker engine"
        try:
            client = self._docker()
            step = f"cannot create the container of job '{spec.job}'"
            container = self._create_idle(client, spec)
            step = f"container of job '{spec.job}' cannot start"
            client.api.start(container)
            step = f"cannot run the script of job '{spec.job}'"
            script = shell_script(spec.script, echo=self.echo_commands)
            shells.append(_Shell(client, container, spec, script, payload, on_line))
            step = f"lost the container of job '{spec.job}'"
            outcome, exit_code, error = self._watch_script(container, spec, cancel, shells[0])
            if shells[0].reader.error is not None:  # the sink is broken: nothing more to show
                outcome, error = Outcome.FAILED, shells[0].reader.error
            elif shells[0].ended:
                step = f"cannot run the after_script of job '{spec.job}'"
                status = _JOB_STATUS[outcome]
                after = shell_script(spec.after_script, echo=self.echo_commands)
                shells.append(_Shell(client, container, spec, after, payload, on_line, status))
                self._watch_after_script(container, spec, cancel, shells[1], on_line)
            else:  # only the container's end can stop it now, and the after_script with it
                on_line("cicd: warning: after_script not run: the script did not stop when killed")
            lines = sum(shell.reader.lines for shell in shells)
            return JobResult(outcome, exit_code, started, _now(), error, lines)
        except EngineUnavailable as exc:
            return JobResult(Outcome.FAILED, None, started, _now(), error=str(exc))
        except ImageNotFound:
            error = f"image '{spec.image}' not found locally"
            return JobResult(Outcome.FAILED, None, started, _now(), error=error)
        except (*_ENGINE_ERRORS, OSError) as exc:  # OSError: an exec's socket
            if _is_connection_error(exc):
                error = str(self._unavailable(exc))
            else:
                error = f"{step}: {_reason(exc)}"
            lines = sum(shell.reader.lines for shell in shells)
            return JobResult(Outcome.FAILED, None, started, _now(), error=error, log_lines=lines)
        finally:
            for shell in shells:
                shell.close()
            if client is not None and container is not None:
                _remove(client, container)

    def _create_idle(self, client: docker.DockerClient, spec: JobSpec) -> str:
        """A job's container whose main process only keeps it alive: ``sh`` reading a stdin
        that stays open and empty (nobody attaches to it), so any image with a shell works."""
        binds = {str(spec.workspace.resolve()): {"bind": WORKDIR, "mode": "rw"}}
        created = client.api.create_container(
            image=spec.image,
            entrypoint=["sh"],
            environment=dict(spec.env),
            working_dir=WORKDIR,
            labels={LABEL_MANAGED: "1", LABEL_RUN: spec.run_id, LABEL_JOB: spec.job},
            name=_container_name(spec),
            host_config=client.api.create_host_config(binds=binds),
            stdin_open=True,
            tty=False,
        )
        return str(created["Id"])

    def _watch_script(
        self,
        container: str,
        spec: JobSpec,
        cancel: threading.Event,
        shell: _Shell,
    ) -> tuple[Outcome, int | None, str | None]:
        """Wait for the script's shell, stopping it (not the container) on timeout or cancel."""
        deadline = None if spec.timeout is None else time.monotonic() + spec.timeout
        while not shell.wait(_POLL_SECONDS):
            if cancel.is_set():
                shell.stop(container)
                return Outcome.CANCELED, None, None
            if deadline is not None and time.monotonic() >= deadline:
                shell.stop(container)
                return Outcome.FAILED, None, f"timed out after {_seconds(spec.timeout)}"
            if shell.reader.error is not None:
                shell.stop(container)
                return Outcome.FAILED, None, shell.reader.error
        exit_code = shell.exit_code()
        return (Outcome.SUCCESS if exit_code == 0 else Outcome.FAILED), exit_code, None

    def _watch_after_script(
        self,
        container: str,
        spec: JobSpec,
        cancel: threading.Event,
        shell: _Shell,
        on_line: LineSink,
    ) -> None:
        """Wait for the after_script within its own limit; its end only ever adds a warning.

        The first cancel does not stop it (GitLab runs it on cancel, to clean up); a second
        one does (``stop_requests``), as do its time limit and the end of this process (the
        container is removed on the way out).
        """
        deadline = time.monotonic() + spec.after_script_timeout
        while not shell.wait(_POLL_SECONDS):
            if stop_requests(cancel) >= 2:
                shell.stop(container)
                on_line("cicd: warning: after_script stopped: canceled again")
                return
            if time.monotonic() >= deadline:
                shell.stop(container)
                limit = _seconds(spec.after_script_timeout)
                on_line(f"cicd: warning: after_script timed out after {limit}")
                return
        exit_code = shell.exit_code()
        if exit_code != 0:
            on_line(f"cicd: warning: after_script failed (exit code {exit_code})")

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
        while not waiter.done.wait(_POLL_SECONDS):
            if cancel.is_set():
                _kill(client, container, waiter)
                return Outcome.CANCELED, None, None
            if deadline is not None and time.monotonic() >= deadline:
                _kill(client, container, waiter)
                return Outcome.FAILED, None, f"timed out after {_seconds(spec.timeout)}"
            if reader.error is not None:
                _kill(client, container, waiter)
                return Outcome.FAILED, None, reader.error
        if waiter.failure is not None:
            raise waiter.failure
        exit_code = waiter.exit_code
        return (Outcome.SUCCESS if exit_code == 0 else Outcome.FAILED), exit_code, None


def shell_script(script: list[str], *, echo: bool = True) -> str:
    """The text ``sh -e -c`` runs: the commands in order, each echoed first as ``$ command``.

    stderr is sent to stdout first: the engine delivers the two streams separately, and one
    stream is the only way to keep a job's lines in the order they were written.
    """
    lines = ["exec 2>&1"]
    for command in script:
        if echo:
            lines.append(f"printf '%s\\n' {shlex.quote('$ ' + command)}")
        lines.append(command)
    return "\n".join(lines)


# GitLab's CI_JOB_STATUS in after_script: a timed out job is "failed" there too
_JOB_STATUS = {Outcome.SUCCESS: "success", Outcome.FAILED: "failed", Outcome.CANCELED: "canceled"}


class _ExecOutput:
    """A ``docker exec``'s output socket as (stdout, stderr) chunks, for ``OutputReader``."""

    def __init__(self, sock: Any) -> None:
        self._socket = sock

    def __iter__(self) -> Iterator[tuple[bytes | None, bytes | None]]:
        for stream, chunk in frames_iter(self._socket, False):
            yield demux_adaptor(stream, chunk)

    def close(self) -> None:
        try:
            self._socket.close()
        except OSError:
            pass  # closed already: the reader is ending either way


class _Shell:
    """One ``sh -e`` of a job run with ``docker exec`` in the job's idle container.

    Secrets reach it as they reach a job's main shell: ``. /dev/stdin`` reads them from the
    exec's stdin, which we write and then half-close (the engine then closes the shell's stdin).
    """

    def __init__(
        self,
        client: docker.DockerClient,
        container: str,
        spec: JobSpec,
        script: str,
        payload: bytes | None,
        on_line: LineSink,
        job_status: str | None = None,
    ) -> None:
        self._client = client
        if payload is not None:
            script = f"{SOURCE_LINE}\n{script}"
        created = client.api.exec_create(
            container,
            ["sh", "-e", "-c", script],
            stdin=payload is not None,
            environment={"CI_JOB_STATUS": job_status} if job_status else None,
            workdir=WORKDIR,
        )
        self.id = str(created["Id"])
        sock = client.api.exec_start(self.id, socket=True)
        output = _ExecOutput(sock)
        self.reader = OutputReader(
            client, container, on_line, spec.job, spec.secrets.values(), stream=output
        )
        self._output = output
        self._stopped_at: float | None = None
        self._next_look = time.monotonic() + _LOOK_SECONDS
        if payload is not None:
            raw = getattr(sock, "_sock", sock)  # the socket under docker's wrapper
            raw.sendall(payload)
            raw.shutdown(socket.SHUT_WR)  # the end of input: the shell goes on with the script

    @property
    def ended(self) -> bool:
        """True once the shell has ended and its output was read to the end."""
        return self.reader.ended

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the shell's output to end; True when it has.

        A process the shell left in the background keeps the output open after the shell
        exits: once the engine says the shell is gone, such leftovers are killed, as they
        would be when a job's container ends.
        """
        self.reader.finish(seconds)
        if self.reader.ended:
            return True
        now = time.monotonic()
        if self._stopped_at is None and now >= self._next_look:
            self._next_look = now + _LOOK_SECONDS  # not an engine call on every poll
            if not self._client.api.exec_inspect(self.id)["Running"]:
                self._kill_all(self._container_of())
        return self.reader.ended

    def stop(self, container: str) -> None:
        """Kill the shell and everything it started, and wait (bounded) for its output to end."""
        self._kill_all(container)
        self.reader.finish(_STOP_SECONDS)

    def exit_code(self) -> int | None:
        """The shell's exit status, as the engine recorded it."""
        code = self._client.api.exec_inspect(self.id)["ExitCode"]
        return None if code is None else int(code)

    def close(self) -> None:
        """Stop reading; never raises (this runs in ``finally``)."""
        self.reader.close()

    def _container_of(self) -> str:
        return str(self._client.api.exec_inspect(self.id)["ContainerID"])

    def _kill_all(self, container: str) -> None:
        self._stopped_at = time.monotonic()
        try:  # as root: the image's user may not signal what a setuid program started
            killer = self._client.api.exec_create(container, _KILL_ALL, user="0")
            self._client.api.exec_start(killer["Id"])
        except _ENGINE_ERRORS:
            pass  # the container is going: its removal ends the shell too


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


def _ensure_image(client: docker.DockerClient, image: str, policy: PullPolicy) -> str | None:
    if policy is not PullPolicy.ALWAYS:
        try:
            client.api.inspect_image(image)
            return None
        except ImageNotFound:
            pass
        except _ENGINE_ERRORS as exc:
            return f"image '{image}' cannot be inspected: {_reason(exc)}"
        if policy is PullPolicy.NEVER:
            return f"image '{image}' not found locally (pull policy 'never')"
    problem = _pull(client, image)
    if problem is None:
        return None
    if policy is PullPolicy.ALWAYS:
        return f"image '{image}' could not be pulled (pull policy 'always'): {problem}"
    return f"image '{image}' not found locally and pull failed: {problem}"


def _pull(client: docker.DockerClient, image: str) -> str | None:
    """Pull one image; None when it worked, else the short reason."""
    try:
        for event in client.api.pull(image, stream=True, decode=True):
            if isinstance(event, dict) and event.get("error"):
                return _one_line(str(event["error"]))
    except _ENGINE_ERRORS as exc:
        return _reason(exc)
    return None


def _kill(client: docker.DockerClient, container: str, waiter: _Waiter) -> None:
    try:
        client.api.kill(container)
    except _ENGINE_ERRORS:
        pass  # already ended, or going: the forced removal finishes the job
    waiter.done.wait(_DRAIN_SECONDS)


def _remove(client: docker.DockerClient, container: str) -> None:
    """Kill and remove a container; never raises (this runs in ``finally``)."""
    try:
        client.api.remove_container(container, force=True)
    except NotFound:
        pass  # gone already
    except _ENGINE_ERRORS:
        pass  # a removal already in progress (409), or the engine went away: nothing more to do


def _container_name(spec: JobSpec) -> str:
    def clean(text: str) -> str:
        return re.sub(r"[^a-zA-Z0-9_.-]+", "-", text).strip("-.")[:40] or "x"

    return f"cicd-{clean(spec.run_id)}-{clean(spec.job)}-{secrets.token_hex(3)}"


def _is_connection_error(exc: BaseException) -> bool:
    return isinstance(exc, requests.exceptions.ConnectionError)


def _reason(exc: BaseException) -> str:
    """A short, one-line reason: the engine's explanation, or the underlying OS error."""
    if isinstance(exc, APIError) and exc.explanation:
        return _one_line(str(exc.explanation))
    os_error = _find_os_error(exc, set())
    if os_error is not None and os_error.strerror:
        return os_error.strerror
    return _one_line(str(exc)) or type(exc).__name__


def _find_os_error(exc: BaseException, seen: set[int]) -> OSError | None:
    if id(exc) in seen:
        return None
    seen.add(id(exc))
    if isinstance(exc, OSError) and exc.strerror:
        return exc
    inner = [exc.__cause__, exc.__context__, *exc.args]
    for candidate in inner:
        if isinstance(candidate, BaseException):
            found = _find_os_error(candidate, seen)
            if found is not None:
                return found
    return None


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _seconds(value: float | None) -> str:
    return f"{value:g}s"


def _now() -> datetime:
    return datetime.now(UTC)
