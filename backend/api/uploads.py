"""Reading a run submission (``request`` field, optional ``bundle`` file) off the request body.

The body is parsed as it arrives (python-multipart, the parser Starlette itself uses) and never
held whole in memory: the bundle goes straight into a private temporary file under
``CICD_HOME/uploads`` (0600, removed once the run's repository has it), and every size limit is
enforced while reading, so an oversized upload costs at most a limit's worth of disk before its
413. A ``Content-Length`` beyond the limits is refused before a byte is read.
"""

from __future__ import annotations

import tempfile
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import anyio.to_thread
from fastapi import HTTPException, Request, status
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

MAX_REQUEST_FIELD = 10 * 1024 * 1024  # the run request's JSON: a pipeline file and its plan
OVERHEAD = 64 * 1024  # multipart boundaries and part headers
FIELD, FILE = "request", "bundle"


def _too_large(what: str, limit: int) -> HTTPException:
    return HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE, f"{what} is larger than the server takes ({limit} bytes)"
    )


def _bad(message: str) -> HTTPException:
    return HTTPException(status.HTTP_400_BAD_REQUEST, message)


@dataclass
class Submitted:
    """What a submission carried: the ``request`` field's text, the bundle's temporary file."""

    request: str | None = None
    bundle: Path | None = None

    def discard(self) -> None:
        """Remove the bundle's temporary file."""
        if self.bundle is not None:
            self.bundle.unlink(missing_ok=True)


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    name: str = ""
    file: IO[bytes] | None = None
    data: bytearray = field(default_factory=bytearray)


class _Reader:
    """The multipart callbacks: they queue work, done between chunks (file writes in a thread)."""

    def __init__(self, upload_dir: Path, max_upload: int, result: Submitted) -> None:
        self.upload_dir, self.max_upload, self.result = upload_dir, max_upload, result
        self.part = _Part()
        self.header = [b"", b""]
        self.writes: list[tuple[IO[bytes], bytes]] = []
        self.written = 0
        self.closing: list[IO[bytes]] = []

    def callbacks(self) -> dict[str, Callable[..., Any]]:
        return {
            "on_part_begin": self.begin,
            "on_header_field": lambda data, start, end: self._add(0, data[start:end]),
            "on_header_value": lambda data, start, end: self._add(1, data[start:end]),
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.data,
            "on_part_end": self.end,
        }

    def _add(self, which: int, data: bytes) -> None:
        self.header[which] += data
        if len(self.header[which]) > OVERHEAD:
            raise _bad("a multipart header is too long")

    def begin(self) -> None:
        self.part = _Part()

    def header_end(self) -> None:
        self.part.headers[self.header[0].lower()] = self.header[1]
        self.header = [b"", b""]

    def headers_finished(self) -> None:
        _, options = parse_options_header(self.part.headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", errors="replace")
        is_file = b"filename" in options
        if (name, is_file) not in ((FIELD, False), (FILE, True)):
            raise _bad(f"unexpected form part '{name}': send the field 'request' and the file "
                       "'bundle' only")
        if (name == FIELD and self.result.request is not None) or (
            name == FILE and self.result.bundle is not None
        ):
            raise _bad(f"form part '{name}' is sent twice")
        self.part.name = name
        if is_file:
            self.upload_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            handle = tempfile.NamedTemporaryFile(  # closed by _read_multipart
                dir=self.upload_dir, prefix="bundle-", suffix=".part", delete=False
            )
            self.closing.append(handle)
            self.result.bundle = Path(handle.name)
            self.part.file = handle

    def data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self.part.file is not None:
            self.written += len(chunk)
            if self.written > self.max_upload:
                raise _too_large("the bundle", self.max_upload)
            self.writes.append((self.part.file, chunk))
        else:
            if len(self.part.data) + len(chunk) > MAX_REQUEST_FIELD:
                raise _too_large("the 'request' field", MAX_REQUEST_FIELD)
            self.part.data.extend(chunk)

    def end(self) -> None:
        if self.part.file is None:
            self.result.request = _text(bytes(self.part.data))

    def flush(self) -> None:
        for handle, chunk in self.writes:
            handle.write(chunk)
        self.writes.clear()


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad("the 'request' field is not UTF-8") from None


async def read_submission(request: Request, upload_dir: Path, max_upload: int) -> Submitted:
    """The submission in ``request``'s body (multipart/form-data or urlencoded).

    HTTPException 413 beyond the limits, 400 for a body that is not a submission. On any error
    nothing is left behind in ``upload_dir``.
    """
    limit = max_upload + MAX_REQUEST_FIELD + OVERHEAD
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise _too_large("the submission", limit)
    kind, options = parse_options_header(request.headers.get("content-type"))
    result = Submitted()
    try:
        if kind == b"multipart/form-data":
            await _read_multipart(request, options, upload_dir, max_upload, result)
        elif kind == b"application/x-www-form-urlencoded":
            result.request = await _read_urlencoded(request)
        else:
            raise HTTPException(
                status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                "send the run as multipart/form-data (a 'request' field, a 'bundle' file)",
            )
    except BaseException:
        result.discard()
        raise
    return result


async def _read_multipart(
    request: Request, options: dict[bytes, bytes], upload_dir: Path, max_upload: int,
    result: Submitted,
) -> None:
    boundary = options.get(b"boundary")
    if not boundary:
        raise _bad("multipart body without a boundary")
    reader = _Reader(upload_dir, max_upload, result)
    total = 0
    try:
        parser = MultipartParser(boundary, reader.callbacks())  # type: ignore[arg-type]
        async for chunk in request.stream():
            total += len(chunk)
            if total > max_upload + MAX_REQUEST_FIELD + OVERHEAD:
                raise _too_large("the submission", max_upload + MAX_REQUEST_FIELD + OVERHEAD)
            parser.write(chunk)
            if reader.writes:
                await anyio.to_thread.run_sync(reader.flush)
        parser.finalize()
    except FormParserError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _bad(f"malformed multipart body: {reason}") from None
    finally:
        for handle in reader.closing:
            handle.close()


async def _read_urlencoded(request: Request) -> str | None:
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_REQUEST_FIELD + OVERHEAD:
            raise _too_large("the submission", MAX_REQUEST_FIELD + OVERHEAD)
    try:
        fields = urllib.parse.parse_qsl(
            _text(bytes(body)), keep_blank_values=True, strict_parsing=False, max_num_fields=4
        )
    except ValueError as exc:
        raise _bad(f"malformed form body: {exc}") from None
    names = [name for name, _ in fields]
    unexpected = sorted(set(names) - {FIELD})
    if unexpected:
        raise _bad(f"unexpected form field '{unexpected[0]}': send the field 'request' only "
                   "(with a bundle, as multipart/form-data)")
    if names.count(FIELD) > 1:
        raise _bad(f"form part '{FIELD}' is sent twice")
    return fields[0][1] if fields else None
