"""How ``cicd server`` (and so the local daemon) serves HTTP: uvicorn, with limits per connection.

uvicorn (0.55, h11) closes a connection idle *between* requests after ``timeout_keep_alive``,
but waits for ever for a request head that never completes: a client that connects and sends
half a request line holds a connection, a file descriptor and some memory until it leaves, and
a few hundred of them make the server unusable. ``HeadTimeoutProtocol`` closes a connection
whose request head is not complete ``head_timeout`` seconds after it began (or after the
connection opened); a request being answered, however long (a followed log), is not affected.
``limit_concurrency`` answers 503 beyond that many connections, ``backlog`` bounds the
connections the kernel queues, and h11's incomplete-event limit bounds a request head's size.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

# uvicorn and h11 are imported where they are used: ``cicd run`` imports this module through
# ``cicd server``'s options and must stay light


@dataclass(frozen=True)
class HttpLimits:
    """Connection limits of the API server (``cicd server`` options, ``CICD_*`` variables)."""

    head_timeout: float = 10.0  # seconds to send a complete request head
    keep_alive: int = 5  # seconds an idle keep-alive connection is kept
    max_connections: int = 1000  # beyond it new requests get 503
    backlog: int = 1024  # connections the kernel queues before they are accepted
    max_head_bytes: int = 16 * 1024  # largest request head (line and headers)


def head_timeout_protocol(head_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol, closing connections whose request head stalls ``head_timeout`` s."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeadTimeoutProtocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is h11.IDLE:  # still waiting for (the rest of) a head
                self._arm()
            else:
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            # from the first byte of a request (or the connection's start), not from the latest
            # byte: a client trickling one byte a second must not hold the connection for ever
            if self._head_timer is None and not self.transport.is_closing():
                self._head_timer = self.loop.call_later(head_timeout, self._expire)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _expire(self) -> None:
            self._head_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

    return HeadTimeoutProtocol


def uvicorn_config(app: Any, limits: HttpLimits, **options: Any) -> Any:
    """A ``uvicorn.Config`` serving ``app`` within ``limits`` (``options`` passed on)."""
    import uvicorn

    return uvicorn.Config(
        app,
        http=head_timeout_protocol(limits.head_timeout),
        timeout_keep_alive=limits.keep_alive,
        limit_concurrency=limits.max_connections,
        backlog=limits.backlog,
        h11_max_incomplete_event_size=limits.max_head_bytes,
        **options,
    )
