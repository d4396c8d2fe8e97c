"""Background upkeep: trimming topic streams and removing consumers of dead processes.

A topic stream is trimmed only below the oldest entry that some consumer group still
needs (its oldest pending entry, or its last delivered one), so a lagging subscription
never loses data, and memory stays bounded by what is not yet acknowledged by everyone.
Every process does this; it is idempotent, so running it more than once is harmless.
A round trims only the topics where this process ended leases since the last round (an
ack is what lets a stream shrink), and every topic once per ``FULL_ROUND_S``: idle
topics cost nothing, however many there are.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from app.adapters.redis.connection import RedisConnection
from app.adapters.redis.lua_admin import TIDY_CONSUMERS, TRIM
from app.adapters.redis.names import NameSpace
from app.adapters.redis.registry import SubscriptionRegistry
from app.adapters.redis.settings import RedisSettings
from app.core.errors import BackendUnavailableError

logger = logging.getLogger("hookline.redis")

FULL_ROUND_S = 300.0
"""How often every topic is trimmed, whether or not this process settled leases on it."""

TIDY_INTERVAL_S = 300.0
"""How often consumers with nothing pending and long idle are removed."""


class Maintenance:
    """Trims streams every ``trim_interval_ms`` and tidies consumers now and then."""

    def __init__(
        self,
        connection: RedisConnection,
        keys: NameSpace,
        registry: SubscriptionRegistry,
        settings: RedisSettings,
        dirty: set[str] | None = None,
    ) -> None:
        """Topics come from ``dirty`` (filled by the lease calls) and, in a full round,
        from the registry: a topic with no subscription stores nothing.
        """
        self.dirty: set[str] = dirty if dirty is not None else set()
        self._next_full = 0.0
        self._conn = connection
        self._keys = keys
        self._registry = registry
        self._settings = settings
        self._next_tidy = time.monotonic() + TIDY_INTERVAL_S

    async def trim(self, topic: str) -> int:
        """Trim one topic's stream; entries removed (-1: a group is missing, nothing done)."""
        tk = self._keys.topic(topic)
        return int(await self._conn.run(TRIM, [tk.stream, tk.subs], []))

    async def tidy(self, only_consumer: str = "", idle_ms: int | None = None) -> int:
        """Remove consumers with nothing pending (``only_consumer``: just that one)."""
        idle = self._settings.consumer_idle_ms if idle_ms is None else idle_ms
        removed = 0
        for sub in await self._registry.list():
            tk = self._keys.topic(sub.topic)
            keys = [tk.stream, tk.queue(sub.id)]
            removed += int(
                await self._conn.run(TIDY_CONSUMERS, keys, [sub.id, idle, only_consumer])
            )
        return removed

    async def run_once(self) -> None:
        """One round: trim the topics with settled leases (all of them when a full round
        is due); tidy consumers when due.
        """
        topics = set(self.dirty)
        self.dirty.clear()
        if time.monotonic() >= self._next_full:
            self._next_full = time.monotonic() + FULL_ROUND_S
            topics |= {s.topic for s in await self._registry.list()}
        try:
            for topic in sorted(topics):
                await self.trim(topic)
                topics.discard(topic)
        finally:
            self.dirty |= topics  # not trimmed (an outage): next round
        if time.monotonic() >= self._next_tidy:
            self._next_tidy = time.monotonic() + TIDY_INTERVAL_S
            await self.tidy()

    async def run(self) -> None:
        """Forever, with jitter so several processes do not all trim at once."""
        interval = self._settings.trim_interval_ms / 1000
        while True:
            await asyncio.sleep(interval * random.uniform(0.8, 1.2))
            try:
                await self.run_once()
            except BackendUnavailableError:
                continue  # the connection has logged the outage; next round
            except Exception:
                logger.exception("redis maintenance round failed; will try again")
