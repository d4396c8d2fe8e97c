"""The outbound HTTP sender: one shared aiohttp session, keep-alive, no redirects.

aiohttp was measured here at 7,457 deliveries/s against 441 for httpx at 100 connections.
Every failure mode of a receiver (refused, reset, hung, trickling, huge or garbage
response) becomes a :class:`SendResult`; nothing raises out of :meth:`WebhookSender.send`.
"""

from __future__ import annotations

import asyncio
import email.utils
import socket
import time
from collections.abc import Mapping

import aiohttp

from app.core.outcome import BLOCKED, SendResult
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
    ) -> None:
        """``max_response_bytes`` is all that is ever read of a response body."""
        self._user_agent = user_agent
        self._max_connections = max_connections
        self._max_response_bytes = max_response_bytes
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the shared session (call inside the running event loop)."""
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            limit_per_host=0,
            keepalive_timeout=30,
            ttl_dns_cache=10,
            family=socket.AF_UNSPEC,
            resolver=self._resolver,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": self._user_agent},
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("Accept-Encoding",),
        )

    async def close(self) -> None:
        """Close connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout_ms: int
    ) -> SendResult:
        """POST once; the whole exchange (connect, send, read) is bounded by ``timeout_ms``."""
        if self._session is None:
            raise RuntimeError("WebhookSender.start() was not called")
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout_ms / 1000):
                async with self._session.post(
                    url, data=body, headers=dict(headers), allow_redirects=False
                ) as response:
                    excerpt = await self._read_excerpt(response)
                    status = response.status
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
        except TimeoutError:
            return SendResult(None, "timeout", duration_ms=_since(started))
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, BlockedDestinationError):
                return SendResult(None, BLOCKED, str(exc.os_error), duration_ms=_since(started))
            return SendResult(
                None, "connection_error", str(exc)[:EXCERPT_CHARS], duration_ms=_since(started)
            )
        except BlockedDestinationError as exc:
            return SendResult(None, BLOCKED, str(exc), duration_ms=_since(started))
        except aiohttp.ClientResponseError as exc:
            return SendResult(None, "invalid_response", str(exc)[:200], duration_ms=_since(started))
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return SendResult(
                None,
                "connection_error",
                f"{type(exc).__name__}: {exc}"[:EXCERPT_CHARS],
                duration_ms=_since(started),
            )
        return SendResult(
            status,
            _reason(status),
            excerpt,
            retry_after_ms=retry_after,
            duration_ms=_since(started),
        )

    async def _read_excerpt(self, response: aiohttp.ClientResponse) -> str | None:
        """Read at most ``max_response_bytes``; keep the start as text for the DLQ."""
        limit = self._max_response_bytes
        if limit <= 0:
            return None
        chunks: list[bytes] = []
        size = 0
        while size < limit:
            chunk = await response.content.read(limit - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if not chunks:
            return None
        return b"".join(chunks)[:EXCERPT_CHARS].decode("utf-8", "replace")


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
