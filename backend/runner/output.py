"""A container's output as lines: read in a thread from the engine's attach stream.

Part of the Docker runner (``backend.runner.docker``), the only user of the docker SDK.

A line longer than ``MAX_LINE_BYTES`` is handed out in pieces rather than held in memory. Job
output is masked later, line by line (``backend.recording``), so a cut must never fall inside a
secret: the two halves would each pass unmasked. ``LineSplitter`` therefore masks the pieces it
cuts itself, never cuts inside an occurrence of a secret, and keeps back the last
(longest secret - 1) bytes of a line still arriving, where a secret may be starting.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

import docker
import requests
from docker.errors import DockerException

from backend.masking import Masker, hide_spans, merge_spans
from backend.runner.base import LineSink

MAX_LINE_BYTES = 64 * 1024  # longer lines are cut into pieces rather than held in memory
_STREAM_ERRORS = (DockerException, requests.exceptions.RequestException, OSError, ValueError)


class LineSplitter:
    """Turns chunks of bytes into lines of at most ``limit`` bytes, with no secret cut in two.

    ``emit`` gets each line (without its newline) or piece of a long line. Pieces the splitter
    cuts come out already masked; whole lines come out as they were written, for the
    recorder to mask. A cut moves back to the start of a secret it would fall in; only a
    stretch of secret longer than ``limit`` is cut inside, and then masked in both pieces.
    Like before, a line that arrives whole in one chunk is handed out whole.
    """

    def __init__(
        self,
        emit: Callable[[bytes], None],
        masker: Masker | None = None,
        limit: int = MAX_LINE_BYTES,
    ) -> None:
        self._emit = emit
        self._masker = masker or Masker(())
        self._limit = limit
        self._pending = b""  # the line so far
        self._covered = 0  # how many leading bytes of _pending are the rest of a cut secret

    def feed(self, chunk: bytes) -> None:
        """Take more bytes; emit the lines (and pieces of long lines) they complete."""
        self._pending += chunk
        if b"\n" in chunk:
            *complete, self._pending = self._pending.split(b"\n")
            for line in complete:
                self._emit(self._carried(line))
                self._covered = 0
        while len(self._pending) > self._limit and self._cut():
            pass

    def close(self) -> None:
        """The stream ended: emit the last line, if it had no newline."""
        if self._pending:
            self._emit(self._carried(self._pending))
        self._pending, self._covered = b"", 0

    def _carried(self, line: bytes) -> bytes:
        """``line`` with the rest of a secret cut from the piece before it masked."""
        if not self._covered:
            return line
        return hide_spans(line, self._spans(line))

    def _spans(self, data: bytes) -> list[tuple[int, int]]:
        spans = self._masker.byte_spans(data)
        return merge_spans([(0, self._covered), *spans]) if self._covered else spans

    def _cut(self) -> bool:
        """Emit a masked first piece of the pending line; False when no safe cut exists yet."""
        data = self._pending
        # Bytes from here on may begin a secret whose end has not arrived yet.
        settled = len(data) - max(self._masker.longest_bytes - 1, 0)
        cut = _char_start(data, min(self._limit, settled))
        # An occurrence that matters here starts before the cut, so it ends within this window:
        # no need to search the rest of a long pending line on every cut.
        spans = self._spans(data[: self._limit + self._masker.longest_bytes])
        carry = 0
        for start, end in spans:
            if start < cut < end:
                if start > 0:
                    cut = start  # the whole secret goes to the next piece
                else:
                    carry = end - cut  # the piece is all secret: the next one starts masked
                break
        if cut <= 0:
            return False  # what is here may all be the start of a secret: wait for more
        self._emit(hide_spans(data[:cut], [(s, min(e, cut)) for s, e in spans if s < cut]))
        self._pending, self._covered = data[cut:], carry
        return True


def _char_start(data: bytes, cut: int) -> int:
    """``cut`` moved back to the start of the UTF-8 character it falls in (at most 3 bytes)."""
    for _ in range(3):
        if cut <= 0 or cut >= len(data) or not 0x80 <= data[cut] < 0xC0:
            break
        cut -= 1
    return cut


class OutputReader:
    """Reads a container's stdout and stderr in a thread and hands out complete lines.

    ``secrets`` are the values the job's output is masked for: long lines are never cut
    inside one (see ``LineSplitter``).
    """

    def __init__(
        self,
        client: docker.DockerClient,
        container: str,
        on_line: LineSink,
        job: str,
        secrets: Iterable[str] = (),
        stream: Any = None,
    ) -> None:
        self.lines = 0
        self.error: str | None = None
        self._on_line = on_line
        self._job = job
        self._masker = Masker(secrets)
        # ``stream``: (stdout, stderr) chunks with a ``close()``, e.g. a ``docker exec``'s
        # output; by default the container's own, attached before it starts
        if stream is None:
            stream = client.api.attach(container, stream=True, logs=False, demux=True)
        self._stream = stream
        self._thread = threading.Thread(target=self._run, name=f"cicd-output-{job}", daemon=True)
        self._thread.start()

    @property
    def ended(self) -> bool:
        """True once the stream has ended and every line of it was handed out."""
        return not self._thread.is_alive()

    def finish(self, timeout: float) -> None:
        """Wait for the output still on its way (the stream ends when the container does)."""
        self._thread.join(timeout)

    def close(self) -> None:
        """Stop reading: close the stream, which ends the thread."""
        self._stream.close()
        self._thread.join(1.0)

    def _run(self) -> None:
        # one splitter per stream: stdout's and stderr's partial lines never mix
        splitters = [LineSplitter(self._emit, self._masker) for _ in range(2)]
        try:
            for frame in self._stream:
                for splitter, chunk in zip(splitters, frame, strict=False):
                    if chunk:
                        splitter.feed(chunk)
        except _STREAM_ERRORS:
            pass  # the stream was closed under us: the job is over either way
        for splitter in splitters:
            splitter.close()

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
