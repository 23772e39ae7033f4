"""A container's output as lines: read in a thread from the engine's attach stream.

Part of the Docker runner (``backend.runner.docker``), the only user of the docker SDK.
"""

from __future__ import annotations

import threading

import docker
import requests
from docker.errors import DockerException

from backend.runner.base import LineSink

MAX_LINE_BYTES = 64 * 1024  # longer lines are cut into pieces rather than held in memory
_STREAM_ERRORS = (DockerException, requests.exceptions.RequestException, OSError, ValueError)


class OutputReader:
    """Reads a container's stdout and stderr in a thread and hands out complete lines."""

    def __init__(
        self, client: docker.DockerClient, container: str, on_line: LineSink, job: str
    ) -> None:
        self.lines = 0
        self.error: str | None = None
        self._on_line = on_line
        self._job = job
        self._stream = client.api.attach(container, stream=True, logs=False, demux=True)
        self._thread = threading.Thread(target=self._run, name=f"cicd-output-{job}", daemon=True)
        self._thread.start()

    def finish(self, timeout: float) -> None:
        """Wait for the output still on its way (the stream ends when the container does)."""
        self._thread.join(timeout)

    def close(self) -> None:
        """Stop reading: close the stream, which ends the thread."""
        self._stream.close()
        self._thread.join(1.0)

    def _run(self) -> None:
        pending = [b"", b""]  # partial last line of stdout, of stderr
        try:
            for frame in self._stream:
                for index, chunk in enumerate(frame):
                    if chunk:
                        pending[index] = self._split(pending[index] + chunk)
        except _STREAM_ERRORS:
            pass  # the stream was closed under us: the job is over either way
        for rest in pending:
            if rest:
                self._emit(rest)

    def _split(self, data: bytes) -> bytes:
        *complete, rest = data.split(b"\n")
        for line in complete:
            self._emit(line)
        while len(rest) > MAX_LINE_BYTES:
            self._emit(rest[:MAX_LINE_BYTES])
            rest = rest[MAX_LINE_BYTES:]
        return rest

    def _emit(self, raw: bytes) -> None:
        if self.error is not None:
            return
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            self._on_line(raw.decode("utf-8", errors="replace"))
        except Exception as exc:
            self.error = f"output handler of job '{self._job}' failed: {type(exc).__name__}: {exc}"
            return
        self.lines += 1
