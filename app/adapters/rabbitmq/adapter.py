"""RabbitMQ implementation of :class:`app.core.ports.QueueAdapter` (aio-pika).

Topology (``<p>`` = the configured prefix; see ``docs/rabbitmq.md``):

- ``<p>.topics`` topic exchange: ``publish`` sends each message once, routing key = topic;
  the broker copies it into the queue of every subscription bound to the topic then.
- ``<p>.sub.<id>.<incarnation>``: one durable queue per subscription, consumed with
  prefetch = ``max_in_flight`` by every instance (competing consumers).
- ``<p>.direct`` direct exchange: reaches one subscription queue by name (immediate
  retries, redrive, the exit of the delay ladder).
- ``<p>.delay.*``: the TTL ladder for retries and delayed messages (:mod:`.delay`).
- ``<p>.dlq.<topic>``: the topic's DLQ (:mod:`.dlq`).
- ``<p>.registry`` and ``<p>.idempotency`` streams: shared state (:mod:`.streamlog`).

Every message is persistent and every publish waits for the broker's confirm. This
class wires the parts together: publishing (:mod:`.publishing`), leases
(:mod:`.leases`), consumers (:mod:`.consumers`), the DLQ (:mod:`.dlq`), figures
(:mod:`.stats`), the registry (:mod:`.registry`) and idempotency keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import aiormq

from app.adapters.kit.codec import encode_envelope
from app.adapters.kit.facade import BrokerFacade
from app.adapters.kit.settings import parse_settings
from app.adapters.rabbitmq import codec, delay
from app.adapters.rabbitmq.connection import (
    BROKER_ERRORS,
    UNAVAILABLE,
    BrokerConnection,
    Outbound,
    Session,
    unavailable,
)
from app.adapters.rabbitmq.consumers import HOUSEKEEPING_S, Consumers
from app.adapters.rabbitmq.dlq import DeadLetterStore
from app.adapters.rabbitmq.idempotency import IdempotencyKeys
from app.adapters.rabbitmq.insight import StreamInsightStore
from app.adapters.rabbitmq.leases import Leases
from app.adapters.rabbitmq.names import LADDER_BITS, NameSpace
from app.adapters.rabbitmq.publishing import MessageWriter
from app.adapters.rabbitmq.registry import Registered, SubscriptionRegistry
from app.adapters.rabbitmq.settings import RabbitMQSettings
from app.adapters.rabbitmq.stats import ScheduledCounts, topic_stats
from app.adapters.rabbitmq.topology import (
    bind_subscription_queue,
    declare_exchanges,
    declare_subscription_queue,
)
from app.core.errors import BackendUnavailableError, SubscriptionExistsError
from app.core.insight import InsightSettings
from app.core.models import Envelope, Subscription, TopicStats
from app.core.ports import OutgoingMessage, RegistryChanges

logger = logging.getLogger("hookline.rabbitmq")

HEAL_CONCURRENCY = 16
"""Subscription queues healed at once (each on its own short-lived channel)."""


class RabbitMQAdapter(BrokerFacade):
    """Stores and moves hookline messages in RabbitMQ; shared by any number of instances."""

    name = "rabbitmq"
    shared_across_processes = True
    leases: Leases
    dlq: DeadLetterStore

    def __init__(self, settings: RabbitMQSettings) -> None:
        """Nothing connects until :meth:`start`."""
        self.settings = settings
        self.names = NameSpace(settings.prefix)
        self.connection = BrokerConnection(settings, self._on_connected, self._on_lost)
        self.registry = SubscriptionRegistry(self.names, self._on_updated, self._on_deleted)
        self.keys = IdempotencyKeys(self.names, settings.idempotency_retention)
        self.dlq = DeadLetterStore(self.connection, self.names, settings.queue_type, self.registry)
        self.consumers = Consumers(self._heal)
        self.scheduled = ScheduledCounts()
        self.leases = Leases(
            self.connection, self.names, self.registry, self.consumers, self.dlq, self.scheduled
        )
        self.writer = MessageWriter(self.connection, self.names)
        self._housekeeping: asyncio.Task[None] | None = None
        self.insight: StreamInsightStore | None = None
        self._heal_slots = asyncio.Semaphore(HEAL_CONCURRENCY)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RabbitMQAdapter:
        """Build from the ``config:`` block of config.yaml (raises one clear error if bad)."""
        return cls(parse_settings(RabbitMQSettings, config))

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Connect in the background; waits for the first attempt only, never raises."""
        self.connection.start()
        await self.connection.first_attempt(self.settings.connect_timeout_ms / 1000 + 5)
        if self._housekeeping is None:
            self._housekeeping = asyncio.create_task(self._housekeep(), name="hookline-rabbitmq")

    async def close(self) -> None:
        """Stop consuming and disconnect; unacked deliveries return to their queues."""
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping
            self._housekeeping = None
        await self.consumers.close()
        await self.connection.close()

    async def ping(self) -> bool:
        """True when the broker answers a passive declare now."""
        session = self.connection.current
        if session is None or not self.registry.log.caught_up:
            return False
        try:
            # A channel of its own: the shared admin channel may be queued behind the
            # heals of thousands of subscription queues right after a start.
            async with asyncio.timeout(2), session.scratch_channel() as channel:
                await channel.exchange_declare(self.names.topics, passive=True)
        except UNAVAILABLE:
            return False
        return True

    async def _on_connected(self, session: Session) -> None:
        """(Re)declare the topology, follow the shared streams, heal subscription queues."""
        admin = await session.admin_channel()
        await declare_exchanges(admin, self.names)
        await delay.declare_ladder(admin, self.names, self.settings.queue_type)
        await self.registry.log.attach(session)
        await self.keys.log.attach(session)
        await self.registry.log.catch_up(session)
        if self.insight is not None:
            await self.insight.attach(session)
        # Subscription queues are healed one by one before their first consumer here
        # (Consumers.healed), not all now: ten thousand of them took over 30 s.

    async def _heal(self, session: Session, registered: Registered) -> None:
        """Declare and bind the subscription's queue again (idempotent): it may be gone,
        or unbound by a crash between registering and binding. A queue that cannot be
        declared as configured (its type changed) is used as it is, with a warning.

        On a channel of its own, at most ``HEAL_CONCURRENCY`` at once: ten thousand
        consumers starting together heal in parallel without exhausting channels.
        """
        queue = registered.queue
        try:
            async with self._heal_slots, session.scratch_channel(consume=True) as channel:
                await declare_subscription_queue(channel, queue, self.settings.queue_type)
                await bind_subscription_queue(
                    channel, self.names, queue, registered.subscription.topic
                )
        except aiormq.exceptions.AMQPChannelError as exc:
            logger.warning("could not re-declare queue %s: %s", queue, exc)

    def _on_lost(self, session: Session) -> None:  # noqa: ARG002 - OnLost signature
        """Everything bound to the dead connections is void; the broker requeued it."""
        self.registry.log.detach()
        self.keys.log.detach()
        if self.insight is not None:
            self.insight.detach()
        self.consumers.forget_all()

    async def _housekeep(self) -> None:
        """Hand back buffers of consumers nobody receives from; forget past-due schedules."""
        while True:
            await asyncio.sleep(HOUSEKEEPING_S)
            self.consumers.housekeep()
            self.scheduled.prune()

    # -- messages -----------------------------------------------------------------------

    async def claim_order(self, subscription: Subscription) -> bool:
        """See :class:`app.core.ports.OrderingPort` (the queue's exclusive consumer)."""
        return await self.leases.claim_order(subscription)

    async def release_order(self, subscription: Subscription) -> None:
        """See :class:`app.core.ports.OrderingPort`."""
        await self.leases.release_order(subscription)

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        """One confirmed, persistent publish per message to the topic exchange."""
        if messages:
            await self.writer.publish(messages)

    # -- subscription registry -----------------------------------------------------------

    async def create_subscription(self, subscription: Subscription) -> None:
        """Declare its queue, win the id in the registry stream, then bind the queue."""
        if self.registry.get(subscription.id) is not None:
            raise SubscriptionExistsError(subscription.id)
        session = await self.connection.session()
        incarnation = uuid.uuid4().hex[:12]
        queue = self.names.subscription_queue(subscription.id, incarnation)
        try:
            admin = await session.admin_channel()
            await declare_subscription_queue(admin, queue, self.settings.queue_type)
            if not await self.registry.create(session, subscription, incarnation):
                await admin.queue_delete(queue)
                raise SubscriptionExistsError(subscription.id)
            await bind_subscription_queue(
                await session.admin_channel(), self.names, queue, subscription.topic
            )
            self.consumers.known_healthy(session, queue)
        except BROKER_ERRORS as exc:
            raise unavailable("create subscription", exc) from exc

    async def update_subscription(self, subscription: Subscription) -> None:
        """Store the new definition; every instance applies it (pause, prefetch...).

        An id unknown even after catching up with the registry is created, as the
        builtin adapter does.
        """
        session = await self.connection.session()
        if self.registry.get(subscription.id) is None:
            await self.registry.log.catch_up(session)
        if self.registry.get(subscription.id) is None:
            await self.create_subscription(subscription)
            return
        await self.registry.update(session, subscription)

    async def get_subscription(self, subscription_id: str) -> Subscription | None:
        """From the local registry; on a miss, catch up first (it may be brand new)."""
        registered = self.registry.get(subscription_id)
        if registered is None and self.connection.current is not None:
            with contextlib.suppress(BackendUnavailableError):
                await self.registry.log.catch_up(self.connection.current)
            registered = self.registry.get(subscription_id)
        return registered.subscription if registered is not None else None

    async def list_subscriptions(self, topic: str | None = None) -> list[Subscription]:
        """From the local registry (follows the stream live; polled by the dispatcher)."""
        return [
            r.subscription
            for r in self.registry.all()
            if topic is None or r.subscription.topic == topic
        ]

    async def registry_version(self) -> str:
        """How many registry events this instance applied (it follows the stream live)."""
        return str(self.registry.changes.version)

    async def registry_changes(self, since: str) -> RegistryChanges | None:
        """From the local log of applied registry events."""
        return self.registry.changes.since(since)

    async def delete_subscription(self, subscription_id: str) -> bool:
        """Record the deletion, then delete the queue (its pending messages go with it)."""
        session = await self.connection.session()
        removed = await self.registry.delete(session, subscription_id)
        if removed is None:
            return False
        await self._delete_queue(session, removed.queue)
        return True

    async def _delete_queue(self, session: Session, queue: str) -> None:
        try:
            await (await session.admin_channel()).queue_delete(queue)
        except BROKER_ERRORS as exc:
            logger.warning("could not delete queue %s: %s", queue, exc)

    def _on_updated(self, registered: Registered, live: bool) -> None:  # noqa: ARG002
        """Another (or this) instance changed a subscription: follow pause and prefetch."""
        self.consumers.follow(registered)

    def _on_deleted(self, registered: Registered, live: bool) -> None:
        """Stop consuming; while following live, also delete the queue (idempotent)."""
        self.consumers.retire_subscription(registered.subscription.id)
        self.scheduled.forget(registered.subscription.id)
        session = self.connection.current
        if live and session is not None:
            self.consumers.spawn(self._delete_queue(session, registered.queue))

    # -- delivery insight, parking, resend ------------------------------------------------

    def insight_store(self, settings: InsightSettings) -> StreamInsightStore:
        """Insight on the ``<prefix>.insight`` stream, followed by every instance."""
        if self.insight is None:
            self.insight = StreamInsightStore(self.connection, self.names.insight, settings)
        return self.insight

    async def requeue(self, subscription: Subscription, envelope: Envelope) -> None:
        """Publish a fresh copy (attempt 1) straight to the subscription's queue."""
        registered = self.registry.get(subscription.id)
        if registered is None:
            return
        session = await self.connection.session()
        headers = codec.copy_headers(1)
        message = Outbound(
            self.names.direct,
            registered.queue,
            encode_envelope(envelope),
            codec.properties(headers),
        )
        try:
            await session.publish(message)
        except aiormq.exceptions.PublishError:
            return  # the queue was deleted meanwhile: nobody to resend to

    async def park_scheduled(self, subscription: Subscription) -> int:  # noqa: ARG002
        """0: retries wait in the shared TTL ladder, which cannot be searched per
        subscription; each joins the paused (parked) queue when it comes due.
        """
        return 0

    # -- idempotency ----------------------------------------------------------------------

    async def claim_idempotency_key(
        self, topic: str, key: str, message_id: str, ttl_ms: int
    ) -> str | None:
        """First claim in the shared stream wins, on every instance alike."""
        session = await self.connection.session()
        return await self.keys.claim(session, topic, key, message_id, ttl_ms)

    async def release_idempotency_key(self, topic: str, key: str) -> None:
        """Append a release so every instance forgets the key."""
        session = await self.connection.session()
        await self.keys.release(session, topic, key)

    # -- introspection -------------------------------------------------------------------

    async def topic_stats(self, topic: str) -> TopicStats:
        """Figures per subscription, as exact as AMQP allows (see :mod:`.stats`)."""
        session = await self.connection.session()
        return await topic_stats(
            session, self.registry, self.consumers, self.scheduled, self.dlq, topic
        )

    async def list_topics(self) -> list[str]:
        """Topics with subscriptions or a DLQ (a topic nobody subscribes to stores nothing)."""
        topics = {r.subscription.topic for r in self.registry.all()}
        return sorted(topics | self.registry.dlq_topics)

    # -- maintenance ----------------------------------------------------------------------

    def subscription_queue(self, subscription_id: str) -> str | None:
        """Name of the subscription's queue, for operators (``rabbitmqctl``) and tests."""
        registered = self.registry.get(subscription_id)
        return registered.queue if registered is not None else None

    async def destroy(self) -> None:
        """Delete every exchange, queue and stream of this prefix (tests, decommissioning).

        Run it on a started adapter: the registry tells which subscription and DLQ queues
        exist. Messages in them are lost; this is not part of the adapter contract.
        """
        session = await self.connection.session()
        await self.registry.log.catch_up(session)
        channel = await session.admin_channel()
        queues = [r.queue for r in self.registry.all()]
        queues += [self.names.dlq(t) for t in self.registry.dlq_topics]
        queues += [self.names.ladder_queue(bit) for bit in range(LADDER_BITS)]
        queues += [self.names.registry, self.names.idempotency, self.names.insight]
        for queue in queues:
            await channel.queue_delete(queue)
        for bit in range(LADDER_BITS):
            await channel.exchange_delete(self.names.ladder_exchange(bit))
        await channel.exchange_delete(self.names.topics)
        await channel.exchange_delete(self.names.direct)
