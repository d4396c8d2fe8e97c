"""Name resolution for the sender, with the SSRF guard applied to every answer.

The HTTP client never resolves a webhook's host itself: the sender asks
:class:`GuardedResolver` for the addresses, and pins its connection to one of them (see
:mod:`app.dispatch.clients`). So the address checked here is the address connected to, and
a name that answered a public address at save time and answers 127.0.0.1 now (DNS
rebinding) is refused before any connection is made.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from typing import Protocol

from app.dispatch.guard import BlockedDestinationError, DestinationGuard

DNS_TTL_S = 10.0
"""How long an answer is reused (what aiohttp's ``ttl_dns_cache`` was)."""
MAX_CACHED_NAMES = 10_000


class Resolver(Protocol):
    """Looks a host name up; tests script one to stand in for DNS."""

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses ``host`` has now, as text, best first."""
        ...


class SystemResolver:
    """The C resolver (``getaddrinfo``) in the loop's thread pool, as aiohttp's default."""

    async def resolve(self, host: str, port: int) -> list[str]:
        """Every distinct address ``getaddrinfo`` answers for a TCP connection."""
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses: list[str] = []
        for _family, _type, _proto, _name, sockaddr in infos:
            address = str(sockaddr[0])
            if address not in addresses:
                addresses.append(address)
        return addresses


class GuardedResolver:
    """Answers only addresses the guard allows; refuses a name that has none left.

    Answers are kept ``ttl_s`` (concurrent lookups of one name share one query), so a hot
    destination costs one lookup per ``ttl_s``, and a re-pointed name is seen within it.
    """

    def __init__(
        self,
        guard: DestinationGuard,
        inner: Resolver | None = None,
        ttl_s: float = DNS_TTL_S,
    ) -> None:
        """Wrap ``inner`` (the system resolver when None)."""
        self._guard = guard
        self._inner: Resolver = inner if inner is not None else SystemResolver()
        self._ttl_s = ttl_s
        self._answers: dict[tuple[str, int], tuple[float, list[str] | str]] = {}
        self._pending: dict[tuple[str, int], asyncio.Future[list[str] | str]] = {}

    @property
    def guard(self) -> DestinationGuard:
        """The rules every answer is checked against."""
        return self._guard

    def cached(self, host: str, port: int) -> list[str] | None:
        """The allowed addresses of ``host`` when a fresh answer is kept, else None (no
        waiting, no timer: the common case of a busy destination); raises like resolve.
        """
        cached = self._answers.get((host, port))
        if cached is not None and cached[0] > time.monotonic():
            return _allowed_or_raise(cached[1])
        return None

    async def resolve(self, host: str, port: int) -> list[str]:
        """Allowed addresses of ``host`` as text, best first; raises BlockedDestinationError."""
        key = (host, port)
        cached = self._answers.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return _allowed_or_raise(cached[1])
        lookup = self._pending.get(key)
        if lookup is None:
            lookup = asyncio.ensure_future(self._lookup(key))
            lookup.add_done_callback(_retrieve)
            self._pending[key] = lookup
        # Shielded: one caller giving up (its attempt cancelled) ends no one else's wait.
        return _allowed_or_raise(await asyncio.shield(lookup))

    async def _lookup(self, key: tuple[str, int]) -> list[str] | str:
        """The allowed addresses, or why none is (a refusal is kept like an answer)."""
        host, port = key
        try:
            answered = await self._inner.resolve(host, port)
        finally:
            del self._pending[key]
        if not answered:
            raise OSError(f"{host} has no address")
        allowed = [
            address
            for address in answered
            if self._guard.allows_address(ipaddress.ip_address(address), host)
        ]
        answer: list[str] | str = allowed or (
            f"{host} resolves only to blocked (loopback/private/metadata) addresses"
        )
        if len(self._answers) >= MAX_CACHED_NAMES:
            self._answers.clear()
        self._answers[key] = (time.monotonic() + self._ttl_s, answer)
        return answer


def _allowed_or_raise(answer: list[str] | str) -> list[str]:
    if isinstance(answer, str):
        raise BlockedDestinationError(answer)
    return answer


def _retrieve(lookup: asyncio.Future[list[str] | str]) -> None:
    """Mark a failed lookup's error as seen (its waiters may all have been cancelled)."""
    if not lookup.cancelled():
        lookup.exception()
