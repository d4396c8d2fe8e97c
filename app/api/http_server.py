"""uvicorn's HTTP protocol with a bound on the request head, writing each answer at once.

uvicorn's default parser (httptools) sets no limit of its own: a client can send megabytes of
headers, or one endless header, and the server buffers all of it before the app sees the
request. :class:`BoundedHeadProtocol` counts the bytes of a head that is still arriving and
answers ``431`` (in hookline's JSON error shape) once it passes the limit, so a head never
costs more memory than that. The exact count and size rules, with their messages, are
applied to complete heads by :class:`app.api.errors.HeaderLimitMiddleware`.

uvicorn also writes a response's head and its body with two socket writes (two system calls
and, with ``TCP_NODELAY``, two packets) where one would do: :class:`CoalescingCycle` holds
the head until the first body chunk and writes both together.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from uvicorn._types import ASGI3Application, ASGISendEvent
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from app.api.errors import json_error_bytes
from app.config import LimitSettings

URL_ALLOWANCE = 16 * 1024
"""What a head may hold besides its headers: the request line with its URL."""


def head_limit(limits: LimitSettings) -> int:
    """The most bytes one request head may take: headers, their framing and the URL."""
    framing = 4 * limits.max_headers  # ": " and CRLF around every header
    return limits.max_header_bytes + framing + URL_ALLOWANCE


def server_options(limits: LimitSettings) -> dict[str, Any]:
    """The uvicorn keyword arguments that bound request heads (also under ``--http h11``)."""
    limit = head_limit(limits)
    BoundedHeadProtocol.max_head_bytes = limit
    return {"http": BoundedHeadProtocol, "h11_max_incomplete_event_size": limit}


class BoundedHeadProtocol(HttpToolsProtocol):
    """httptools' protocol, refusing a head that grows past ``max_head_bytes``."""

    max_head_bytes: ClassVar[int] = head_limit(LimitSettings())

    _head_open = False
    _head_bytes = 0

    def on_message_begin(self) -> None:
        """A new request starts: its head is open and nothing of it was counted."""
        super().on_message_begin()
        self._head_open = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        """The head is complete; its exact size is judged by the middleware."""
        self._head_open = False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        """Parse, then refuse the request if its unfinished head is over the limit.

        The chunk in which a request begins is counted whole (it may also end the
        previous request): an overcount of at most one read, on the safe side.
        """
        super().data_received(data)
        if not self._head_open or self.transport.is_closing():
            return
        self._head_bytes += len(data)
        if self._head_bytes > self.max_head_bytes:
            self._refuse_head()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        """Run the request on a :class:`CoalescingCycle` (one write per short answer)."""
        if type(cycle) is RequestResponseCycle:
            cycle.__class__ = CoalescingCycle
        super()._start_asgi_task(cycle, app)

    def _refuse_head(self) -> None:
        body = json_error_bytes(
            "headers_too_large",
            f"request line and headers are larger than {self.max_head_bytes} bytes",
        )
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + body
        )
        self.transport.close()


class _HeadFirst:
    """Stands in for the transport while uvicorn's ``send`` runs: a head written alone is
    kept (``hold``), and a kept head goes out with the next write (or alone, before a close).
    """

    __slots__ = ("head", "hold", "transport")

    def __init__(self, transport: asyncio.Transport, head: bytes | None, hold: bool) -> None:
        self.transport = transport
        self.head = head
        self.hold = hold

    def write(self, data: bytes) -> None:
        if self.hold:
            self.head = data if self.head is None else self.head + data
            return
        head = self.head
        if head is not None:
            self.head = None
            data = head + data
        self.transport.write(data)

    def flush(self) -> None:
        if self.head is not None:
            self.hold = False
            self.write(b"")

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()


class CoalescingCycle(RequestResponseCycle):
    """uvicorn's request/response cycle, writing a response's head with its first body
    chunk. Nothing else changes: uvicorn's own ``send`` builds and checks both.

    Between the two the head is held (an ASGI app sends them back to back); should the app
    fail in between, uvicorn closes the connection, as it does after a head was sent. The
    stand-in transport is in place only while ``send`` runs without awaiting (flow control
    is waited for first), so nothing else of the cycle ever sees it.
    """

    _held: bytes | None = None

    async def send(self, message: ASGISendEvent) -> None:
        """The server's ``send``, on a stand-in transport that keeps or prepends the head."""
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        transport = self.transport
        starting = message["type"] == "http.response.start" and not self.response_started
        held, self._held = self._held, None
        if not starting and held is None:
            await super().send(message)
            return
        stand_in = _HeadFirst(transport, held, hold=starting)
        self.transport = stand_in  # type: ignore[assignment]
        try:
            await super().send(message)
        finally:
            self.transport = transport
        if starting:
            self._held = stand_in.head
        elif not self.disconnected and not transport.is_closing():
            stand_in.flush()  # a HEAD answer: no body was written
