"""Handing a job's secrets to its shell through the container's stdin.

A secret must not reach the disk: Docker writes a container's configuration (its environment
included) to ``config.v2.json``, and a file on the host outlives a process killed with
``kill -9``. So the container is created with an open stdin and nothing else: the job's shell
first runs ``. /dev/stdin``, which reads ``export NAME='value'`` lines that we write to the
attached stdin once the container has started, then sees the end of its input (Docker closes a
container's stdin when the one client that attached it lets go) and goes on with the script.

The values live only in this process's memory, the socket to the engine, the pipe into the
container and the environment of the job's processes, which only their own user (or root) can
read; this works for any ``USER`` of the image, and for nothing but the job it was written to.
"""

from __future__ import annotations

import contextlib
import shlex
import socket
from typing import Any

from backend.runner.base import secret_problem

SOURCE_LINE = ". /dev/stdin"  # the first line of the job's shell when it has secrets
# Docker watches an attached stdin for its detach keys (ctrl-p ctrl-q by default) and would
# stop copying at them; NUL (ctrl-@) is the one byte no secret can hold, so it never matches.
_DETACH_KEYS = "ctrl-@"


def secrets_payload(secrets: dict[str, str]) -> bytes:
    """The shell text exporting ``secrets``; ``ValueError`` naming the first unusable one."""
    lines = []
    for name, value in secrets.items():
        problem = secret_problem(name, value)
        if problem is not None:
            raise ValueError(problem)
        lines.append(f"export {name}={shlex.quote(value)}\n")
    # surrogateescape: a value read from os.environ keeps the bytes it had there
    return "".join(lines).encode("utf-8", "surrogateescape")


class SecretsInput:
    """The stdin of one created container, attached before it starts, written once after."""

    def __init__(self, client: Any, container: str) -> None:
        self._socket = client.api.attach_socket(
            container, params={"stdin": 1, "stream": 1, "detachKeys": _DETACH_KEYS}
        )

    def send(self, payload: bytes) -> None:
        """Write ``payload`` and end the input (the container must have started)."""
        raw = getattr(self._socket, "_sock", self._socket)  # the socket under docker's wrapper
        try:
            raw.sendall(payload)
            # half-close: the engine sees the end of input and closes the container's stdin
            raw.shutdown(socket.SHUT_WR)
        finally:
            self.close()

    def close(self) -> None:
        """Let go of the socket; never raises."""
        with contextlib.suppress(OSError):
            self._socket.close()
