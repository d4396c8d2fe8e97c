"""The Redis adapter: durable, shared by every hookline process, crash-safe.

A stream per topic with a consumer group per subscription (fan-out and competing
consumers), a stream and a schedule per subscription for its own copies (retries,
delayed publishes, releases, redrives), a DLQ indexed by id, and a registry shared by
all instances. See ``docs/redis.md`` for deployment notes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio.cluster import RedisCluster

from app.adapters.kit.facade import BrokerFacade
from app.adapters.kit.settings import parse_settings
from app.adapters.redis.coalesce import ScriptCoalescer
from app.adapters.redis.codec import encode_envelope
from app.adapters.redis.connection import RedisConnection
from app.adapters.redis.dlq import DeadLetterStore
from app.adapters.redis.groups import ConsumerGroups
from app.adapters.redis.insight import RedisInsightStore
from app.adapters.redis.leases import PROMOTE_LIMIT, Leases
from app.adapters.redis.lua_messages import PROMOTE
from app.adapters.redis.lua_rate import RESERVE
from app.adapters.redis.maintenance import Maintenance
from app.adapters.redis.names import NameSpace
from app.adapters.redis.publishing import MessageWriter
from app.adapters.redis.registry import SubscriptionRegistry
from app.adapters.redis.settings import RedisSettings
from app.adapters.redis.stats import topic_stats
from app.adapters.redis.timer import DueTimer
from app.adapters.redis.wakeups import Wakeups
from app.core.errors import BackendUnavailableError, SubscriptionExistsError
from app.core.insight import InsightSettings
from app.core.models import Envelope, Subscription, TopicStats, now_ms
from app.core.ports import OutgoingMessage, RegistryChanges

logger = logging.getLogger("hookline.redis")

_CLOSE_TIDY_TIMEOUT_S = 2.0
_STUCK_PROMOTE_PAUSE_MS = 250


def default_consumer_name() -> str:
    """``host:pid:random``: unique per process, readable in ``XINFO CONSUMERS``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class RedisAdapter(BrokerFacade):
    """Implementation of :class:`app.core.ports.QueueAdapter` on Redis Streams."""

    name = "redis"
    shared_across_processes = True
    leases: Leases
    dlq: DeadLetterStore

    def __init__(self, settings: RedisSettings) -> None:
        """No I/O: :meth:`start` connects (in the background when Redis is down)."""
        self.settings = settings
        self.names = NameSpace(settings.key_prefix)
        self.connection = RedisConnection(settings)
        self.scripts = ScriptCoalescer(self.connection)
        self.consumer = settings.consumer_name or default_consumer_name()
        self.registry = SubscriptionRegistry(self.connection, self.names)
        self.groups = ConsumerGroups(self.connection, self.names, self.registry)
        self.timer = DueTimer(self._promote)
        self.wakeups = Wakeups(settings, self._cluster_nodes if settings.cluster else None)
        self.leases = Leases(
            self.connection,
            self.names,
            settings,
            self.groups,
            self.timer,
            self.consumer,
            self.wakeups,
            self.scripts,
        )
        self.writer = MessageWriter(self.connection, self.names, self.timer, self.scripts)
        self.dlq = DeadLetterStore(self.connection, self.names)
        self.maintenance = Maintenance(
            self.connection, self.names, self.registry, settings, self.leases.settled_topics
        )
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RedisAdapter:
        """Build from the ``config:`` block of ``config.yaml`` (see :class:`RedisSettings`)."""
        return cls(parse_settings(RedisSettings, config))

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start probing Redis, the due-time timer and maintenance; never raises."""
        if self._tasks:
            return
        self.connection.start()
        self._tasks = [
            asyncio.create_task(self.timer.run(), name="redis-timer"),
            asyncio.create_task(self.maintenance.run(), name="redis-maintenance"),
            asyncio.create_task(self.wakeups.run(), name="redis-wakeups"),
        ]

    async def close(self) -> None:
        """Stop background work, drop this process's idle consumers, close connections.

        Unended leases stay pending: another consumer claims them after the visibility
        timeout (or this one, restarted, does).
        """
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # Bounded: a background loop that lost its cancel must not hang shutdown.
            _, stragglers = await asyncio.wait(self._tasks, timeout=_CLOSE_TIDY_TIMEOUT_S)
            for task in stragglers:
                task.cancel()
        self._tasks = []
        with contextlib.suppress(BackendUnavailableError, TimeoutError):
            await asyncio.wait_for(self._forget_own_consumer(), _CLOSE_TIDY_TIMEOUT_S)
        await self.scripts.close()
        await self.connection.close()

    async def _forget_own_consumer(self) -> None:
        if self.leases.touched:
            await self.maintenance.tidy(only_consumer=self.consumer, idle_ms=0)

    async def ping(self) -> bool:
        """True when Redis answers now."""
        return await self.connection.ping()

    def _cluster_nodes(self) -> list[tuple[str, int]]:
        """Nodes the cluster client knows, for the wake-up subscriber to fall back on."""
        client = self.connection.client
        if not isinstance(client, RedisCluster):
            return []
        return [(node.host, int(node.port)) for node in client.get_nodes()]

    async def _promote(self, topic: str, subscription_id: str) -> int | None:
        """Move due copies; the next due time, or a short pause when nothing could move."""
        tk = self.names.topic(topic)
        keys = [tk.schedule(subscription_id), tk.queue(subscription_id), tk.waiting]
        now = now_ms()
        next_due, moved = await self.scripts.run(
            PROMOTE, keys, [now, PROMOTE_LIMIT, subscription_id]
        )
        if not next_due:
            return None
        due = int(float(next_due))
        if due <= now and not int(moved):
            return now + _STUCK_PROMOTE_PAUSE_MS  # Redis is full: do not spin
        return due

    # -- messages -----------------------------------------------------------------------

    async def claim_order(self, subscription: Subscription) -> bool:
        """See :class:`app.core.ports.OrderingPort` (``SET NX PX``, renewed)."""
        return await self.leases.ownership.claim(subscription)

    async def release_order(self, subscription: Subscription) -> None:
        """See :class:`app.core.ports.OrderingPort`."""
        await self.leases.ownership.release(subscription)

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        """Store for every current subscription; returns once Redis holds them."""
        if messages:
            await self.writer.publish(messages)

    # -- subscription registry -----------------------------------------------------------

    async def create_subscription(self, subscription: Subscription) -> None:
        """Register, then create its groups at the end of the topic stream."""
        if not await self.registry.create(subscription):
            raise SubscriptionExistsError(subscription.id)
        try:
            await self.groups.create(subscription)
        except BackendUnavailableError:
            with contextlib.suppress(BackendUnavailableError):
                await self.registry.remove(subscription.id)
            raise

    async def update_subscription(self, subscription: Subscription) -> None:
        """Replace the stored definition (its groups and pending copies are kept)."""
        if not await self.registry.put(subscription):
            await self.groups.create(subscription)

    async def get_subscription(self, subscription_id: str) -> Subscription | None:
        """One subscription, read fresh from Redis."""
        return await self.registry.get(subscription_id)

    async def list_subscriptions(self, topic: str | None = None) -> list[Subscription]:
        """All subscriptions (of one topic), as every instance sees them."""
        subscriptions = await self.registry.list(topic)
        if topic is None:
            self.wakeups.retain({s.id for s in subscriptions})
        return subscriptions

    async def registry_version(self) -> str:
        """The registry's version counter (one GET): bumped by every registry change."""
        return await self.registry.version()

    async def registry_changes(self, since: str) -> RegistryChanges | None:
        """From the registry's change log (one script call)."""
        return await self.registry.changes(since)

    async def delete_subscription(self, subscription_id: str) -> bool:
        """Unregister, then drop its groups, pending and scheduled copies (DLQ stays)."""
        subscription = await self.registry.get(subscription_id)
        if subscription is None or not await self.registry.remove(subscription_id):
            return False
        await self.groups.drop(subscription.topic, subscription_id)
        self.leases.settled_topics.add(subscription.topic)
        self.timer.forget(subscription.topic, subscription_id)
        self.wakeups.forget(subscription_id)
        return True

    # -- rate limits (the optional RateLimiter role) --------------------------------------

    async def acquire(self, subscription_id: str, topic: str, per_second: float, burst: int) -> int:
        """Reserve a token from the subscription's bucket, shared by every instance."""
        key = self.names.topic(topic).rate(subscription_id)
        wait = await self.scripts.run(RESERVE, [key], [repr(float(per_second)), burst])
        return int(wait)

    # -- delivery insight, parking, resend ------------------------------------------------

    def insight_store(self, settings: InsightSettings) -> RedisInsightStore:
        """Insight in Redis, shared by every instance, expired by Redis."""
        return RedisInsightStore(self.connection, self.names, settings, self.scripts)

    async def requeue(self, subscription: Subscription, envelope: Envelope) -> None:
        """A fresh copy (attempt 1) in the subscription's schedule, due now: the timer
        moves it into the subscription's own stream at once.
        """
        tk = self.names.topic(subscription.topic)
        now = now_ms()
        member = f"r{secrets.token_hex(6)}|1|{encode_envelope(envelope)}"
        with self.connection.translate():
            await self.connection.client.zadd(tk.schedule(subscription.id), {member: now})
        self.timer.notify(subscription.topic, subscription.id, now)

    async def park_scheduled(self, subscription: Subscription) -> int:
        """Move every scheduled copy into the subscription's own stream now (promote with
        an infinite clock); a paused subscription's stream is not read until resume.
        """
        tk = self.names.topic(subscription.topic)
        keys = [tk.schedule(subscription.id), tk.queue(subscription.id)]
        total = 0
        while True:
            _, moved = await self.connection.run(PROMOTE, keys, [2**62, PROMOTE_LIMIT])
            total += int(moved)
            if int(moved) < PROMOTE_LIMIT:
                return total

    # -- idempotency ----------------------------------------------------------------------

    async def claim_idempotency_key(
        self, topic: str, key: str, message_id: str, ttl_ms: int
    ) -> str | None:
        """``SET NX PX GET``: one round trip, shared by every instance."""
        name = self.names.topic(topic).idempotency(key)
        with self.connection.translate():
            previous = await self.connection.client.set(
                name, message_id, nx=True, px=max(1, ttl_ms), get=True
            )
        return None if previous is None else str(previous)

    async def release_idempotency_key(self, topic: str, key: str) -> None:
        """Forget a key whose publish failed."""
        with self.connection.translate():
            await self.connection.client.delete(self.names.topic(topic).idempotency(key))

    # -- introspection -------------------------------------------------------------------

    async def topic_stats(self, topic: str) -> TopicStats:
        """Backlog, in flight, scheduled and DLQ per subscription."""
        return await topic_stats(self.connection, self.names, self.registry, topic)

    async def list_topics(self) -> list[str]:
        """Topics with subscriptions, or with DLQ entries left by deleted ones."""
        with_subs = {s.topic for s in await self.registry.list()}
        others = sorted((await self.registry.topics()) - with_subs)
        counts = await asyncio.gather(*(self.dlq.count(t, None) for t in others))
        return sorted(with_subs | {t for t, n in zip(others, counts, strict=True) if n})
