"""A raw asyncio server on 127.0.0.1 that misbehaves as told, and keeps score.

Every connection reads one HTTP request, then runs a behaviour: hang, trickle, stream
gigabytes, close mid-response, answer garbage. The server records how many connections
were open at once and how long each lasted (accept to the client hanging up), which is
what a hostile receiver can cost hookline.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Connection"], Awaitable[None]]

GIB = 1024**3
HANG_LIMIT_S = 60.0
"""No behaviour runs longer than this, whatever the client does (tests stay bounded)."""


@dataclass
class Connection:
    """One accepted connection."""

    opened: float
    closed: float | None = None
    bytes_sent: int = 0

    @property
    def lasted_s(self) -> float:
        return (self.closed or time.monotonic()) - self.opened


@dataclass
class HostileServer:
    """Serves ``behaviour`` to every connection."""

    behaviour: Behaviour
    connections: list[Connection] = field(default_factory=list)
    open_now: int = 0
    most_open: int = 0
    port: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = Connection(opened=time.monotonic())
        self.connections.append(connection)
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            async with asyncio.timeout(HANG_LIMIT_S):
                await read_request(reader)
                await self.behaviour(reader, writer, connection)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            connection.closed = time.monotonic()
            self.open_now -= 1
            writer.close()


async def read_request(reader: asyncio.StreamReader) -> None:
    """Consume one request: head, then a Content-Length body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)


async def until_client_leaves(reader: asyncio.StreamReader) -> None:
    """Wait until the client closes its side (read returns EOF) or resets."""
    while await reader.read(65536):
        pass


async def hang(reader: asyncio.StreamReader, _: asyncio.StreamWriter, __: Connection) -> None:
    """Read the request, answer nothing."""
    await until_client_leaves(reader)


async def trickle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: Connection
) -> None:
    """A 200 whose body arrives one byte every 50 ms."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
    leaving = asyncio.ensure_future(until_client_leaves(reader))
    try:
        while not leaving.done():
            writer.write(b".")
            await writer.drain()
            connection.bytes_sent += 1
            # The slowness under test; ends at once when the client hangs up.
            await asyncio.wait({leaving}, timeout=0.05)
    finally:
        leaving.cancel()


async def gigabytes(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: Connection
) -> None:
    """A 500 announcing and streaming 1 GiB (generated on the fly, never held in memory)."""
    writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: %d\r\n\r\n" % GIB)
    chunk = b"GIGABYTES " * 6554
    while connection.bytes_sent < GIB:
        writer.write(chunk)
        await writer.drain()
        connection.bytes_sent += len(chunk)


async def close_mid_response(
    _: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: Connection
) -> None:
    """A 200 promising 100 bytes, sending 7, then hanging up."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
    await writer.drain()
    connection.bytes_sent = 7


async def garbage(
    _: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: Connection
) -> None:
    """Not HTTP at all."""
    noise = b"SSH-2.0-OpenSSH_9.6\r\n\x00\xff\xfe not http at all \x07\r\n\r\n"
    writer.write(noise)
    await writer.drain()
    connection.bytes_sent = len(noise)


async def endless_headers(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: Connection
) -> None:
    """A status line, then header lines for ever (as fast as the client takes them)."""
    writer.write(b"HTTP/1.1 200 OK\r\n")
    leaving = asyncio.ensure_future(until_client_leaves(reader))
    line = b"X-Endless: " + b"h" * 100 + b"\r\n"
    try:
        while not leaving.done():
            writer.write(line * 64)
            await writer.drain()
            connection.bytes_sent += len(line) * 64
    finally:
        leaving.cancel()


async def slow_headers(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: Connection
) -> None:
    """Slowloris in reverse: the response head arrives one byte every 50 ms, never ending."""
    leaving = asyncio.ensure_future(until_client_leaves(reader))
    head = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"s" * 100_000
    try:
        for byte in head:
            if leaving.done():
                break
            writer.write(bytes([byte]))
            await writer.drain()
            connection.bytes_sent += 1
            # The slowness under test; ends at once when the client hangs up.
            await asyncio.wait({leaving}, timeout=0.05)
    finally:
        leaving.cancel()
