"""pyreqwest clients pinned to checked addresses: one per (scheme, host, port, address).

reqwest resolves names itself and has no resolver hook in pyreqwest, only a static
``ClientBuilder.resolve(host, ip, port)``. So each client is built for one address the
guard allowed, with that mapping: reqwest connects there and nowhere else, while the Host
header, TLS SNI and the certificate check still use the host name. A name that moves to
another address gets another client (the address is part of the key), so a stale client
is never reached through a new answer; clients idle for ``idle_s`` are closed, and at most
``max_clients`` are kept (building one costs milliseconds: it loads the system's trusted
roots, so a busy destination keeps its client across DNS refreshes).
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from pyreqwest.client import Client, ClientBuilder

ClientKey = tuple[str, str, int, str | None]
"""Scheme, host as the URL parser spells it, port, and the pinned address (None: literal)."""

IDLE_S = 60.0
MAX_CLIENTS = 512
SWEEP_EVERY_S = 5.0
KEEPALIVE = timedelta(seconds=30)
SETTLE_S = 0.05
"""After closing, how long reqwest's own thread gets to finish tearing connections down.

An interpreter that exits while it still does (right after a failed connection, most
often) can abort with "PyGILState_Release: thread state ... must be current" (seen with
pyreqwest 0.15.1 in about one exit in four after a TLS failure; none in 24 with this wait).
"""


class PinnedClient:
    """One client and who is using it (an in-use client is never closed)."""

    __slots__ = ("client", "last_used", "users")

    def __init__(self, client: Client) -> None:
        self.client = client
        self.users = 0
        self.last_used = time.monotonic()

    def release(self) -> None:
        """The attempt that acquired this client is over."""
        self.users -= 1
        self.last_used = time.monotonic()


class PinnedClients:
    """Builds, shares and retires the pinned clients."""

    def __init__(
        self,
        user_agent: str,
        max_in_flight: int,
        idle_s: float = IDLE_S,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        """``max_in_flight`` bounds each client's requests (a second line of defence
        behind the sender's own budgets).
        """
        self._user_agent = user_agent
        self._max_in_flight = max_in_flight
        self._idle_s = idle_s
        self._max_clients = max_clients
        self._clients: dict[ClientKey, PinnedClient] = {}
        self._next_sweep = time.monotonic() + SWEEP_EVERY_S
        self._closing: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._clients)

    def acquire(self, key: ClientKey) -> PinnedClient:
        """The client for ``key``, built on first use; call ``release()`` when done."""
        entry = self._clients.get(key)
        if entry is None:
            self._sweep(force=len(self._clients) >= self._max_clients)
            entry = self._clients[key] = PinnedClient(self._build(key))
        elif self._next_sweep < time.monotonic():
            self._sweep(force=False)
        entry.users += 1
        return entry

    def _build(self, key: ClientKey) -> Client:
        _scheme, host, port, address = key
        builder = (
            ClientBuilder()
            .follow_redirects(False)
            .no_proxy()  # an HTTP(S)_PROXY would resolve the name itself, past the guard
            .gzip(False)  # a compressed body is a bomb waiting to be inflated; never asked for
            .brotli(False)
            .zstd(False)
            .deflate(False)
            .referer(False)
            .http1_lower_case_headers()  # as Standard Webhooks spells them: webhook-id, ...
            .user_agent(self._user_agent)
            .max_connections(self._max_in_flight)
            .pool_idle_timeout(KEEPALIVE)
        )
        if address is not None:
            builder = builder.resolve(host, address, port)
        return builder.build()

    def _sweep(self, force: bool) -> None:
        """Close clients idle too long; when ``force``, also the least recently used idle
        ones until there is room for one more.
        """
        now = time.monotonic()
        self._next_sweep = now + SWEEP_EVERY_S
        idle = sorted(
            ((entry.last_used, key) for key, entry in self._clients.items() if entry.users == 0),
            key=lambda item: item[0],
        )
        excess = len(self._clients) - self._max_clients + 1 if force else 0
        for last_used, key in idle:
            if last_used > now - self._idle_s and excess <= 0:
                break
            self._retire(key)
            excess -= 1

    def _retire(self, key: ClientKey) -> None:
        entry = self._clients.pop(key)
        task = asyncio.ensure_future(entry.client.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Close every client (in use or not): the sender is shutting down."""
        had_clients = bool(self._clients or self._closing)
        for key in list(self._clients):
            self._retire(key)
        await asyncio.gather(*self._closing, return_exceptions=True)
        if had_clients:
            await asyncio.sleep(SETTLE_S)
