"""One connection for the adapter's script calls: commands pipelined in order, no pool.

Measured on the target machine (a VM, where every syscall and every wake-up of another
process is dear), redis-py spent ~145 µs of CPU on a one-command pipeline round trip and
~25 µs per further command: a pool checkout with its lock and observability hooks, a
timeout context per reply, ``wait_for`` (a task) around each send. Here each loop turn's
calls (see :mod:`.coalesce`) become one buffer, written with one ``write`` on a single
long-lived connection, and hiredis parses the replies as they arrive
(``data_received``); replies come back in the order the commands were sent, so a FIFO of
waiting batches is all the bookkeeping. Redis runs commands one at a time anyway: one
connection serves any number of callers, and several batches may be in flight on it.

A batch not answered within ``socket_timeout_ms`` fails with a timeout and the connection
is dropped (its replies can no longer be matched); any loss fails every batch in flight
with a connection error, and the next batch reconnects. Both are the errors
:meth:`RedisConnection.translate` maps to "unavailable". Only plain ``redis://`` and
``unix://`` URLs use it (with a user, password and db); TLS and Redis Cluster stay on
redis-py (:func:`supported`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import hiredis
from redis import exceptions as rexc
from redis.asyncio.connection import parse_url

from app.adapters.redis.settings import RedisSettings

_SWEEP_S = 0.25
"""How often batches in flight are checked against the reply timeout."""


def supported(settings: RedisSettings) -> bool:
    """True when the URL is one this client speaks (plain TCP or a unix socket)."""
    if settings.cluster:
        return False
    params = parse_url(settings.redis_url)
    plain = {"host", "port", "db", "username", "password", "path", "connection_class"}
    if set(params) - plain:
        return False  # TLS options, or anything else we would silently ignore
    connection_class = params.get("connection_class")
    return connection_class is None or connection_class.__name__ == "UnixDomainSocketConnection"


def pack(args: Sequence[str | bytes | int | float]) -> bytes:
    """One command in RESP, as redis-py encodes it (ints and floats by ``repr``)."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            raw = arg.encode()
        elif isinstance(arg, bytes):
            raw = arg
        elif isinstance(arg, bool):
            raise rexc.DataError("a bool is not a Redis argument")
        else:
            raw = repr(arg).encode()
        out += (b"$%d\r\n" % len(raw), raw, b"\r\n")
    return b"".join(out)


@dataclass(slots=True)
class _Waiting:
    """A batch written, waiting for its ``count`` replies."""

    future: asyncio.Future[list[Any]]
    count: int
    sent_at: float
    replies: list[Any]


class _Protocol(asyncio.Protocol):
    """Feeds hiredis with what arrives; hands each batch its replies in order."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[_Waiting] = deque()
        self.lost: BaseException | None = None
        self._reader = hiredis.Reader(encoding="utf-8", replyError=rexc.ResponseError)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        waiting = self.waiting
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as exc:
                self.fail(rexc.ConnectionError(f"redis protocol error: {exc}"))
                return
            if reply is False:
                return
            if not waiting:
                self.fail(rexc.ConnectionError("redis sent a reply nobody asked for"))
                return
            head = waiting[0]
            head.replies.append(reply)
            if len(head.replies) == head.count:
                waiting.popleft()
                if not head.future.done():
                    head.future.set_result(head.replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._fail_waiting(rexc.ConnectionError(f"redis connection lost: {exc or 'closed'}"))

    def fail(self, error: BaseException) -> None:
        """Drop the connection and fail every batch in flight with ``error``."""
        transport, self.transport = self.transport, None
        self._fail_waiting(error)
        if transport is not None:
            transport.abort()

    def _fail_waiting(self, error: BaseException) -> None:
        self.lost = self.lost or error
        while self.waiting:
            head = self.waiting.popleft()
            if not head.future.done():
                head.future.set_exception(error)


class RedisMux:
    """Pipelined script calls over one connection (connected on first use)."""

    def __init__(self, settings: RedisSettings) -> None:
        """No I/O until the first :meth:`execute`."""
        self._params: dict[str, Any] = dict(parse_url(settings.redis_url))
        self._timeout_s = settings.socket_timeout_ms / 1000
        self._connect_timeout_s = settings.connect_timeout_ms / 1000
        self._protocol: _Protocol | None = None
        self._connecting = asyncio.Lock()
        self._sweeper: asyncio.TimerHandle | None = None
        self.writes = 0
        """Buffers written (tests and figures: commands per write)."""

    async def execute(self, packed: bytes, count: int) -> list[Any]:
        """Send ``count`` packed commands; their replies in order (an error reply is a
        :class:`redis.exceptions.ResponseError` in its place, not raised).

        Raises :class:`redis.exceptions.ConnectionError` or ``TimeoutError`` when the
        connection fails or a reply is late (nothing is retried: a script may have run).
        """
        replies = self.send(packed, count)
        if replies is None:
            await self._connect()
            replies = self.send(packed, count)
            if replies is None:
                lost = self._protocol.lost if self._protocol is not None else None
                raise rexc.ConnectionError(f"redis connection lost: {lost}")
        return await replies

    def send(self, packed: bytes, count: int) -> asyncio.Future[list[Any]] | None:
        """Write now if connected: a future of the replies (as :meth:`execute` returns or
        raises them); None when there is no connection yet (:meth:`execute` makes one).
        """
        protocol = self._protocol
        transport = protocol.transport if protocol is not None else None
        if protocol is None or transport is None or transport.is_closing():
            return None
        loop = asyncio.get_running_loop()
        waiting = _Waiting(loop.create_future(), count, loop.time(), [])
        protocol.waiting.append(waiting)
        transport.write(packed)
        self.writes += 1
        if self._sweeper is None:
            self._sweeper = loop.call_later(_SWEEP_S, self._sweep)
        return waiting.future

    def _sweep(self) -> None:
        """Drop the connection when its oldest batch waited past the timeout."""
        self._sweeper = None
        protocol = self._protocol
        if protocol is None or not protocol.waiting:
            return
        loop = asyncio.get_running_loop()
        if loop.time() - protocol.waiting[0].sent_at > self._timeout_s:
            protocol.fail(rexc.TimeoutError(f"redis did not answer within {self._timeout_s:g}s"))
            return
        self._sweeper = loop.call_later(_SWEEP_S, self._sweep)

    async def _connect(self) -> _Protocol:
        async with self._connecting:
            protocol = self._protocol
            if protocol is not None and protocol.transport is not None:
                return protocol
            loop = asyncio.get_running_loop()
            params = self._params
            try:
                async with asyncio.timeout(self._connect_timeout_s):
                    if "path" in params:
                        _, protocol = await loop.create_unix_connection(_Protocol, params["path"])
                    else:
                        _, protocol = await loop.create_connection(
                            _Protocol, params.get("host", "localhost"), params.get("port", 6379)
                        )
            except (OSError, TimeoutError) as exc:
                raise rexc.ConnectionError(f"cannot connect to redis: {exc}") from exc
            self._protocol = protocol
            await self._handshake(protocol)
            return protocol

    async def _handshake(self, protocol: _Protocol) -> None:
        """AUTH and SELECT as the URL asks, pipelined like any other batch."""
        params = self._params
        commands: list[bytes] = []
        if params.get("password") is not None:
            user = params.get("username")
            auth = ["AUTH", user, params["password"]] if user else ["AUTH", params["password"]]
            commands.append(pack(auth))
        if params.get("db"):
            commands.append(pack(["SELECT", int(params["db"])]))
        if not commands:
            return
        transport = protocol.transport
        if transport is None:
            raise rexc.ConnectionError(f"redis connection lost: {protocol.lost}")
        loop = asyncio.get_running_loop()
        waiting = _Waiting(loop.create_future(), len(commands), loop.time(), [])
        protocol.waiting.append(waiting)
        transport.write(b"".join(commands))
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                replies = await waiting.future
        except TimeoutError as exc:
            protocol.fail(rexc.TimeoutError("redis handshake timed out"))
            raise rexc.TimeoutError("redis handshake timed out") from exc
        for reply in replies:
            if isinstance(reply, rexc.ResponseError):
                protocol.fail(rexc.ConnectionError(f"redis refused the handshake: {reply}"))
                raise rexc.AuthenticationError(str(reply))

    async def close(self) -> None:
        """Close the connection (batches in flight fail)."""
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
        protocol, self._protocol = self._protocol, None
        if protocol is not None:
            protocol.fail(rexc.ConnectionError("redis connection closed"))
