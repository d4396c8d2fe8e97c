"""The outbound HTTP sender: one shared aiohttp session, keep-alive, no redirects.

aiohttp was measured here at 7,457 deliveries/s against 441 for httpx at 100 connections.
Connections are budgeted: at most ``max_connections`` in all and at most
``max_connections_per_destination`` to one destination (scheme, host, port), so a dead
receiver holds only its own destination's share. An attempt waits for its slots *before*
its ``timeout_ms`` clock starts: waiting behind another subscription never burns a retry.
Every failure mode of a receiver (refused, reset, hung, trickling, huge or garbage
response) becomes a :class:`SendResult`; nothing raises out of :meth:`WebhookSender.send`.
"""

from __future__ import annotations

import asyncio
import email.utils
import socket
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import aiohttp

from app.core.outcome import BLOCKED, SendResult
from app.core.redact import redact
from app.dispatch.guard import BlockedDestinationError

EXCERPT_CHARS = 1024


def parse_retry_after(value: str | None, now: float | None = None) -> int | None:
    """``Retry-After`` in ms: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return int(value) * 1000
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    delta = when.timestamp() - (now if now is not None else time.time())
    return max(0, int(delta * 1000))


class WebhookSender:
    """Posts signed bodies to subscriber URLs."""

    def __init__(
        self,
        user_agent: str,
        max_connections: int = 1000,
        max_response_bytes: int = 64 * 1024,
        resolver: aiohttp.abc.AbstractResolver | None = None,
        max_connections_per_destination: int = 100,
    ) -> None:
        """``max_response_bytes`` is all that is ever read of a response body."""
        self._user_agent = user_agent
        self._max_connections = max_connections
        self._per_destination = min(max_connections_per_destination, max_connections)
        self._slots = _Slots(max_connections, self._per_destination)
        self._max_response_bytes = max_response_bytes
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the shared session (call inside the running event loop)."""
        connector = aiohttp.TCPConnector(
            # Our slots already keep within both limits, so the pool never makes an attempt
            # wait; the same limits here are a second line of defence.
            limit=self._max_connections,
            limit_per_host=self._per_destination,
            keepalive_timeout=30,
            ttl_dns_cache=10,
            family=socket.AF_UNSPEC,
            resolver=self._resolver,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            # One deadline per attempt, ours (asyncio.timeout in send); aiohttp's default
            # 5-minute total would arm a second timer on every request.
            timeout=aiohttp.ClientTimeout(total=None),
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("Accept-Encoding",),
        )

    async def close(self) -> None:
        """Close connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def max_connections_per_destination(self) -> int:
        """The most attempts that can be on the wire to one destination at once."""
        return self._per_destination

    async def send(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout_ms: int
    ) -> SendResult:
        """POST once; the whole exchange (connect, send, read) is bounded by ``timeout_ms``.

        The clock starts once the attempt holds its connection slots (its destination's,
        then the global pool's), so time spent queued behind other attempts is not
        charged to this one.
        A failure's excerpt says how far the exchange got (no answer, or the status and
        how much of the body), with credentials masked, so the DLQ tells an operator what
        the receiver did.
        """
        if self._session is None:
            raise RuntimeError("WebhookSender.start() was not called")
        async with self._slots.hold(_destination(url)):
            return await self._send(self._session, url, body, headers, timeout_ms)

    async def _send(
        self,
        session: aiohttp.ClientSession,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        timeout_ms: int,
    ) -> SendResult:
        started = time.perf_counter()
        progress = _Progress()
        request_headers = dict(headers)
        request_headers["User-Agent"] = self._user_agent
        try:
            async with asyncio.timeout(timeout_ms / 1000):
                async with session.post(
                    url, data=body, headers=request_headers, allow_redirects=False
                ) as response:
                    progress.status = response.status
                    excerpt = await self._read_excerpt(response, progress)
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
        except TimeoutError:
            return self._failed("timeout", progress.timed_out(timeout_ms), started)
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, BlockedDestinationError):
                return self._failed(BLOCKED, str(exc.os_error), started)
            return self._failed("connection_error", str(exc), started)
        except BlockedDestinationError as exc:
            return self._failed(BLOCKED, str(exc), started)
        except aiohttp.ClientResponseError as exc:
            return self._failed("invalid_response", progress.failed(exc), started)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return self._failed("connection_error", progress.failed(exc), started)
        return SendResult(
            progress.status,
            _reason(progress.status),
            excerpt,
            retry_after_ms=retry_after,
            duration_ms=_since(started),
        )

    @staticmethod
    def _failed(reason: str, detail: str, started: float) -> SendResult:
        return SendResult(None, reason, redact(detail)[:EXCERPT_CHARS], duration_ms=_since(started))

    async def _read_excerpt(
        self, response: aiohttp.ClientResponse, progress: _Progress
    ) -> str | None:
        """Read at most ``max_response_bytes``; keep the start as text for the DLQ.

        The rest of a longer body is never read: leaving the response closes the
        connection instead of draining gigabytes into it.
        """
        limit = self._max_response_bytes
        if limit <= 0:
            return None
        chunks: list[bytes] = []
        while progress.body_bytes < limit:
            chunk = await response.content.read(limit - progress.body_bytes)
            if not chunk:
                break
            chunks.append(chunk)
            progress.body_bytes += len(chunk)
        if not chunks:
            return None
        return redact(b"".join(chunks)[:EXCERPT_CHARS].decode("utf-8", "replace"))


def _destination(url: str) -> tuple[str, str, int | None]:
    """What ``limit_per_host`` keys on: scheme, host and port (default port filled in)."""
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return ("", url, None)
    return (parts.scheme, (parts.hostname or "").lower(), port)


class _Slots:
    """Connection budgets: one semaphore per destination inside one global semaphore.

    The destination's slot is taken first, so attempts to a dead receiver queue on their
    own semaphore and never sit in the global queue ahead of healthy destinations.
    A destination's semaphore is dropped once nobody holds or awaits it.
    """

    def __init__(self, total: int, per_destination: int) -> None:
        self._total = asyncio.Semaphore(total)
        self._per_destination = per_destination
        self._destinations: dict[tuple[str, str, int | None], tuple[asyncio.Semaphore, int]] = {}

    @property
    def destinations(self) -> int:
        """Destinations with an attempt holding or awaiting a slot now."""
        return len(self._destinations)

    @asynccontextmanager
    async def hold(self, key: tuple[str, str, int | None]) -> AsyncIterator[None]:
        """Hold one slot of ``key``'s budget and one of the global budget."""
        semaphore, users = self._destinations.get(key, (None, 0))
        if semaphore is None:
            semaphore = asyncio.Semaphore(self._per_destination)
        self._destinations[key] = (semaphore, users + 1)
        try:
            async with semaphore, self._total:
                yield
        finally:
            semaphore, users = self._destinations[key]
            if users <= 1:
                del self._destinations[key]
            else:
                self._destinations[key] = (semaphore, users - 1)


class _Progress:
    """How far one exchange got, to describe a failure."""

    def __init__(self) -> None:
        self.status: int = 0
        self.body_bytes = 0

    def _where(self) -> str:
        if not self.status:
            return "before any response"
        return f"after status {self.status} and {self.body_bytes} body bytes"

    def timed_out(self, timeout_ms: int) -> str:
        if not self.status:
            return f"no response within {timeout_ms} ms"
        return f"response not complete within {timeout_ms} ms ({self._where()})"

    def failed(self, exc: BaseException) -> str:
        return f"{type(exc).__name__} {self._where()}: {exc}"


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _reason(status: int) -> str:
    if 200 <= status < 300:
        return "delivered"
    if status == 410:
        return "gone"
    if 300 <= status < 400:
        return "redirect_not_followed"
    return "http_error"
