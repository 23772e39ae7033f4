"""Scripts run as ``docker exec`` shells of an idle job container: how after_script is possible.

A job with an ``after_script`` (GitLab) needs the same container after its script has ended,
however it ended (a timeout or cancel included): a script that is the container's main process
takes the container with it when it is killed. So the container's main process is an idle
``sh`` waiting on an open stdin nobody writes to (``DockerRunner`` creates and starts it), and
the script and then the after_script each run as a ``docker exec`` shell (``ExecShell``): the
after_script starts only once every line of the script's output is read (order kept), each shell
gets the secrets through its own exec stdin exactly as a job's main shell does (never the exec's
environment), and both outputs go through the same reader and masking. A timeout or cancel stops
the script with ``kill -KILL -1`` run in the container, which kills every process but the idle
main one, so the container stays for the after_script.
"""

from __future__ import annotations

import shlex
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import docker
from docker.utils.socket import demux_adaptor, frames_iter

from backend.runner.base import JobSpec, LineSink, Outcome, stop_requests
from backend.runner.engine import ENGINE_ERRORS, WORKDIR, seconds
from backend.runner.output import OutputReader
from backend.runner.stdin import SOURCE_LINE

POLL_SECONDS = 0.05  # how often a running job looks at its timeout and cancel event
_KILL_ALL = ["sh", "-c", "kill -KILL -1"]  # every process but the caller and the idle PID 1
_LOOK_SECONDS = 0.5  # how often a shell whose output is still open is asked whether it ended
_STOP_SECONDS = 5.0  # how long a killed shell may take to end before the job gives up on it
# GitLab's CI_JOB_STATUS in after_script: a timed out job is "failed" there too
_JOB_STATUS = {Outcome.SUCCESS: "success", Outcome.FAILED: "failed", Outcome.CANCELED: "canceled"}


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


class ScriptThenAfter:
    """The script and then the after_script of one job, as shells of its started idle container.

    ``step`` names what was being done, for an engine error's message; ``lines`` counts what
    both shells showed so far.
    """

    def __init__(
        self,
        client: docker.DockerClient,
        container: str,
        spec: JobSpec,
        on_line: LineSink,
        payload: bytes | None,
        *,
        echo: bool,
    ) -> None:
        self._client = client
        self._container = container
        self._spec = spec
        self._on_line = on_line
        self._payload = payload
        self._echo = echo
        self.shells: list[ExecShell] = []
        self.step = f"cannot run the script of job '{spec.job}'"

    @property
    def lines(self) -> int:
        """Lines shown by both shells so far."""
        return sum(shell.reader.lines for shell in self.shells)

    def run(self, cancel: threading.Event) -> tuple[Outcome, int | None, str | None]:
        """Run the script, then the after_script whatever happened; the script's outcome."""
        spec, on_line = self._spec, self._on_line
        script = shell_script(spec.script, echo=self._echo)
        first = ExecShell(self._client, self._container, spec, script, self._payload, on_line)
        self.shells.append(first)
        self.step = f"lost the container of job '{spec.job}'"
        outcome, exit_code, error = self._watch_script(cancel, first)
        if first.reader.error is not None:  # the sink is broken: nothing more to show
            return Outcome.FAILED, exit_code, first.reader.error
        if not first.ended:  # only the container's end can stop it now, and the after_script
            on_line("cicd: warning: after_script not run: the script did not stop when killed")
            return outcome, exit_code, error
        self.step = f"cannot run the after_script of job '{spec.job}'"
        after = shell_script(spec.after_script, echo=self._echo)
        status = _JOB_STATUS[outcome]
        second = ExecShell(
            self._client, self._container, spec, after, self._payload, on_line, status
        )
        self.shells.append(second)
        self._watch_after_script(cancel, second)
        return outcome, exit_code, error

    def close(self) -> None:
        """Stop reading every shell; never raises (this runs in ``finally``)."""
        for shell in self.shells:
            shell.close()

    def _watch_script(
        self, cancel: threading.Event, shell: ExecShell
    ) -> tuple[Outcome, int | None, str | None]:
        """Wait for the script's shell, stopping it (not the container) on timeout or cancel."""
        spec, container = self._spec, self._container
        deadline = None if spec.timeout is None else time.monotonic() + spec.timeout
        while not shell.wait(POLL_SECONDS):
            if cancel.is_set():
                shell.stop(container)
                return Outcome.CANCELED, None, None
            if deadline is not None and time.monotonic() >= deadline:
                shell.stop(container)
                return Outcome.FAILED, None, f"timed out after {seconds(spec.timeout)}"
            if shell.reader.error is not None:
                shell.stop(container)
                return Outcome.FAILED, None, shell.reader.error
        exit_code = shell.exit_code()
        return (Outcome.SUCCESS if exit_code == 0 else Outcome.FAILED), exit_code, None

    def _watch_after_script(self, cancel: threading.Event, shell: ExecShell) -> None:
        """Wait for the after_script within its own limit; its end only ever adds a warning.

        The first cancel does not stop it (GitLab runs it on cancel, to clean up); a second
        one does (``stop_requests``), as do its time limit and the end of this process (the
        container is removed on the way out).
        """
        spec, container, on_line = self._spec, self._container, self._on_line
        deadline = time.monotonic() + spec.after_script_timeout
        while not shell.wait(POLL_SECONDS):
            if stop_requests(cancel) >= 2:
                shell.stop(container)
                on_line("cicd: warning: after_script stopped: canceled again")
                return
            if time.monotonic() >= deadline:
                shell.stop(container)
                limit = seconds(spec.after_script_timeout)
                on_line(f"cicd: warning: after_script timed out after {limit}")
                return
        exit_code = shell.exit_code()
        if exit_code != 0:
            on_line(f"cicd: warning: after_script failed (exit code {exit_code})")


class ExecOutput:
    """A ``docker exec``'s output socket as (stdout, stderr) chunks, for ``OutputReader``."""

    def __init__(self, sock: Any) -> None:
        self._socket = sock

    def __iter__(self) -> Iterator[tuple[bytes | None, bytes | None]]:
        for stream, chunk in frames_iter(self._socket, False):
            yield demux_adaptor(stream, chunk)

    def close(self) -> None:
        """Close the socket; never raises."""
        try:
            self._socket.close()
        except OSError:
            pass  # closed already: the reader is ending either way


class ExecShell:
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
        output = ExecOutput(sock)
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
        except ENGINE_ERRORS:
            pass  # the container is going: its removal ends the shell too
