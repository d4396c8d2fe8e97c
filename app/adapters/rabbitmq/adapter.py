"""RabbitMQ implementation of :class:`app.adapters.base.QueueAdapter` (aio-pika).

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

Every message is persistent and every publish waits for the broker's confirm. A retry
is published (confirmed) before the original is acked, so a crash in between duplicates
an attempt but never loses one.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import aiormq
import aiormq.abc

from app.adapters.base import (
    BackendUnavailableError,
    DlqPage,
    OutgoingMessage,
    SubscriptionExistsError,
)
from app.adapters.rabbitmq import codec, delay
from app.adapters.rabbitmq.config import RabbitMQConfig
from app.adapters.rabbitmq.connection import (
    BROKER_ERRORS,
    UNAVAILABLE,
    BrokerConnection,
    Outbound,
    Session,
    unavailable,
)
from app.adapters.rabbitmq.consumer import Receipt, SubscriptionConsumer
from app.adapters.rabbitmq.dlq import DeadLetters
from app.adapters.rabbitmq.idempotency import IdempotencyKeys
from app.adapters.rabbitmq.names import LADDER_BITS, Names
from app.adapters.rabbitmq.registry import Registered, Registry
from app.adapters.rabbitmq.topology import (
    bind_subscription_queue,
    declare_exchanges,
    declare_subscription_queue,
)
from app.core.models import (
    Delivery,
    DlqEntry,
    Envelope,
    LastError,
    Subscription,
    SubscriptionStats,
    TopicStats,
    now_ms,
)

logger = logging.getLogger("hookline.rabbitmq")

IDLE_CONSUMER_S = 30.0
"""A consumer nobody has received from for this long hands its buffer back."""

REQUEUE_PAUSE_S = 1.0
"""How long a message whose retry or DLQ entry could not be stored waits before requeue."""

_HOUSEKEEPING_S = 5.0


class RabbitMQAdapter:
    """Stores and moves hookline messages in RabbitMQ; shared by any number of instances."""

    name = "rabbitmq"
    shared_across_processes = True

    def __init__(self, config: RabbitMQConfig) -> None:
        """Nothing connects until :meth:`start`."""
        self.config = config
        self.names = Names(config.prefix)
        self._conn = BrokerConnection(config, self._on_connected, self._on_lost)
        self._registry = Registry(self.names, self._on_updated, self._on_deleted)
        self._keys = IdempotencyKeys(self.names, config.idempotency_retention)
        self._dlq = DeadLetters(self.names, config.queue_type, self._registry.note_dlq_topic)
        self._consumers: dict[str, SubscriptionConsumer] = {}
        self._retired: set[SubscriptionConsumer] = set()
        self._consumer_locks: dict[str, asyncio.Lock] = {}
        self._scheduled: dict[str, list[int]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._housekeeping: asyncio.Task[None] | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RabbitMQAdapter:
        """Build from the ``config:`` block of config.yaml (raises one clear error if bad)."""
        return cls(RabbitMQConfig.from_mapping(config))

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Connect in the background; waits for the first attempt only, never raises."""
        self._conn.start()
        await self._conn.first_attempt(self.config.connect_timeout_ms / 1000 + 5)
        if self._housekeeping is None:
            self._housekeeping = asyncio.create_task(self._housekeep(), name="hookline-rabbitmq")

    async def close(self) -> None:
        """Stop consuming and disconnect; unacked deliveries return to their queues."""
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping
            self._housekeeping = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for consumer in [*self._consumers.values(), *self._retired]:
            await consumer.stop()
        self._consumers.clear()
        self._retired.clear()
        await self._conn.close()

    async def ping(self) -> bool:
        """True when the broker answers a passive declare now."""
        session = self._conn.current
        if session is None or not self._registry.log.caught_up:
            return False
        try:
            async with asyncio.timeout(2):
                channel = await session.admin_channel()
                await channel.exchange_declare(self.names.topics, passive=True)
        except UNAVAILABLE:
            return False
        return True

    async def _on_connected(self, session: Session) -> None:
        """(Re)declare the topology, follow the shared streams, heal subscription queues."""
        admin = await session.admin_channel()
        await declare_exchanges(admin, self.names)
        await delay.declare_ladder(admin, self.names, self.config.queue_type)
        await self._registry.log.attach(session)
        await self._keys.log.attach(session)
        await self._registry.log.catch_up(session)
        for registered in self._registry.all():
            try:
                admin = await session.admin_channel()
                await declare_subscription_queue(admin, registered.queue, self.config.queue_type)
                await bind_subscription_queue(
                    admin, self.names, registered.queue, registered.subscription.topic
                )
            except aiormq.exceptions.AMQPChannelError as exc:
                logger.warning("could not re-declare queue %s: %s", registered.queue, exc)

    def _on_lost(self, session: Session) -> None:  # noqa: ARG002 - OnLost signature
        """Everything bound to the dead connections is void; the broker requeued it."""
        self._registry.log.detach()
        self._keys.log.detach()
        self._consumers.clear()
        self._retired.clear()

    # -- messages -----------------------------------------------------------------------

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        """One confirmed, persistent publish per message to the topic exchange.

        A delayed message carries its due time; each subscription's copy goes through the
        delay ladder when its consumer first sees it, so fan-out still happens now.
        A batch is not atomic in AMQP: on failure some messages may have been accepted,
        and a client retry duplicates them (at-least-once).
        """
        if not messages:
            return
        session = await self._conn.session()
        now = now_ms()
        outbound = []
        for message in messages:
            due = message.deliver_at_ms
            headers = {codec.DUE: due} if due is not None and due > now else None
            outbound.append(
                Outbound(
                    self.names.topics,
                    message.envelope.topic,
                    codec.encode_envelope(message.envelope),
                    codec.properties(headers),
                    mandatory=False,
                )
            )
        for result in await session.publish_each(outbound):
            if result is not None:
                raise result

    async def receive(
        self, subscription: Subscription, max_count: int, wait_ms: int
    ) -> list[Delivery]:
        """Take up to ``max_count`` messages pushed by this subscription's consumer."""
        deadline = time.monotonic() + wait_ms / 1000
        registered = self._registry.get(subscription.id)
        session = self._conn.current
        if (
            max_count <= 0
            or session is None
            or registered is None
            or registered.subscription.paused
        ):
            if registered is not None and registered.subscription.paused:
                await self._pause_consumer(subscription.id)
            await _sleep_until(deadline)
            return []
        try:
            consumer = await self._consumer(session, registered, subscription.max_in_flight)
        except BROKER_ERRORS as exc:
            logger.debug("cannot consume %s yet: %s", registered.queue, exc)
            await _sleep_until(deadline)
            return []
        out: list[Delivery] = []
        while True:
            remaining = 0.0 if out else max(0.0, deadline - time.monotonic())
            messages = await consumer.take(max_count - len(out), remaining)
            out += await self._sort(session, consumer, registered, messages)
            if out or time.monotonic() >= deadline or len(out) >= max_count:
                break
            if not consumer.consuming:
                await _sleep_until(deadline)
                break
        return out

    async def _consumer(
        self, session: Session, registered: Registered, prefetch: int
    ) -> SubscriptionConsumer:
        sub_id = registered.subscription.id
        prefetch = max(1, prefetch)
        current = self._consumers.get(sub_id)
        if current is not None and _usable(current, session, registered, prefetch):
            return current  # the hot path: no lock
        lock = self._consumer_locks.setdefault(sub_id, asyncio.Lock())
        async with lock:
            current = self._consumers.get(sub_id)
            if current is not None and _usable(current, session, registered, prefetch):
                return current
            if current is not None:
                self._retire(current)
            consumer = SubscriptionConsumer(sub_id, registered.queue, prefetch, session.generation)
            try:
                await consumer.start(session)
            except BaseException:
                await consumer.stop()
                raise
            self._consumers[sub_id] = consumer
            return consumer

    def _retire(self, consumer: SubscriptionConsumer) -> None:
        """Stop a consumer; it lingers until its leased messages are settled."""
        if self._consumers.get(consumer.subscription_id) is consumer:
            del self._consumers[consumer.subscription_id]
        self._retired.add(consumer)
        self._spawn(consumer.pause())

    async def _sort(
        self,
        session: Session,
        consumer: SubscriptionConsumer,
        registered: Registered,
        messages: list[aiormq.abc.DeliveredMessage],
    ) -> list[Delivery]:
        """Deliveries that are due; not-yet-due copies go (back) through the delay ladder."""
        deliveries: list[Delivery] = []
        later: list[tuple[aiormq.abc.DeliveredMessage, int]] = []
        now = now_ms()
        for message in messages:
            tag = message.delivery_tag
            if tag is None:  # take() only returns deliveries, which have tags
                continue
            headers = message.header.properties.headers
            due = codec.header_int(headers, codec.DUE, None)
            if due is not None and due > now:
                later.append((message, due))
                continue
            attempt = codec.header_int(headers, codec.ATTEMPT, 1) or 1
            receipt = Receipt(consumer, tag)
            try:
                envelope = codec.decode_envelope(message.body)
            except (ValueError, KeyError, TypeError) as exc:
                await self._dead_letter_undecodable(session, registered, message, receipt, exc)
                continue
            deliveries.append(Delivery(registered.subscription.id, envelope, attempt, receipt))
        if later:
            await self._delay(session, consumer, later)
        return deliveries

    async def _delay(
        self,
        session: Session,
        consumer: SubscriptionConsumer,
        later: list[tuple[aiormq.abc.DeliveredMessage, int]],
    ) -> None:
        """Send copies into the ladder for the rest of their delay, then ack them."""
        now = now_ms()
        outbound = []
        for message, due in later:
            exchange, bits = delay.route(self.names, due - now)
            headers = dict(message.header.properties.headers or {})
            headers = {k: v for k, v in headers.items() if not k.startswith(("x-", "hl-b"))}
            outbound.append(
                Outbound(exchange, consumer.queue, message.body, codec.properties(headers | bits))
            )
        results = await session.publish_each(outbound)
        failure: BaseException | None = None
        for (message, due), result in zip(later, results, strict=True):
            tag = message.delivery_tag
            if tag is None:
                continue
            if result is None:
                self._note_scheduled(consumer.subscription_id, due)
                await consumer.settle(tag, None)
            else:
                failure = result
                self._requeue_soon(consumer, tag)
        if failure is not None:
            raise (
                failure
                if isinstance(failure, BackendUnavailableError)
                else unavailable("delay", failure)
            )

    async def _dead_letter_undecodable(
        self,
        session: Session,
        registered: Registered,
        message: aiormq.abc.DeliveredMessage,
        receipt: Receipt,
        exc: Exception,
    ) -> None:
        """A foreign message in a subscription queue: keep it in the DLQ, never drop it."""
        topic = registered.subscription.topic
        envelope = Envelope(
            id=f"raw-{uuid.uuid4().hex}",
            topic=topic,
            data=message.body.decode(errors="replace"),
            published_at=now_ms(),
        )
        entry = DlqEntry(
            id=f"dlq_raw{uuid.uuid4().hex}",
            topic=topic,
            subscription_id=registered.subscription.id,
            message=envelope,
            attempts=0,
            last_error=LastError(reason="undecodable", body_excerpt=str(exc)[:200]),
            failed_at=now_ms(),
        )
        logger.error("undecodable message in %s moved to the DLQ: %s", registered.queue, exc)
        await self._dlq.add(session, entry)
        await receipt.consumer.settle(receipt.delivery_tag, None)

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Ack on the channel each came from, coalesced (void receipts are skipped)."""
        batches: dict[SubscriptionConsumer, list[int]] = {}
        for delivery in deliveries:
            receipt = delivery.receipt
            if isinstance(receipt, Receipt) and receipt.consumer.owns(receipt):
                batches.setdefault(receipt.consumer, []).append(receipt.delivery_tag)
        for consumer, tags in batches.items():
            await consumer.ack_many(tags)

    async def retry_at(self, delivery: Delivery, due_at_ms: int) -> None:
        """Publish attempt+1 into the ladder (or straight back if due), confirmed, then ack."""
        receipt = delivery.receipt
        if not isinstance(receipt, Receipt) or not receipt.consumer.owns(receipt):
            return  # the channel died: the broker already gave the original back
        consumer = receipt.consumer
        if not self._is_current(consumer):
            await consumer.settle(receipt.delivery_tag, None)  # subscription deleted meanwhile
            return
        wait = due_at_ms - now_ms()
        headers: dict[str, Any] = codec.copy_headers(delivery.attempt + 1, due_at_ms)
        if wait > 0:
            exchange, bits = delay.route(self.names, wait)
            headers |= bits
        else:
            exchange = self.names.direct
        message = Outbound(
            exchange,
            consumer.queue,
            codec.encode_envelope(delivery.message),
            codec.properties(headers),
        )
        try:
            session = await self._conn.session()
            await session.publish(message)
        except aiormq.exceptions.PublishError:
            pass  # unroutable: the subscription's queue was deleted, nothing to retry
        except BackendUnavailableError:
            self._requeue_soon(consumer, receipt.delivery_tag)
            raise
        if wait > 0:
            self._note_scheduled(consumer.subscription_id, due_at_ms)
        await consumer.settle(receipt.delivery_tag, None)

    async def dead_letter(self, delivery: Delivery, entry: DlqEntry) -> None:
        """Publish the entry to the topic's DLQ (confirmed), then ack the delivery."""
        receipt = delivery.receipt
        if not isinstance(receipt, Receipt) or not receipt.consumer.owns(receipt):
            return
        if not self._is_current(receipt.consumer):
            await receipt.consumer.settle(receipt.delivery_tag, None)
            return
        try:
            session = await self._conn.session()
            await self._dlq.add(session, entry)
        except BackendUnavailableError:
            self._requeue_soon(receipt.consumer, receipt.delivery_tag)
            raise
        await receipt.consumer.settle(receipt.delivery_tag, None)

    def _requeue_soon(self, consumer: SubscriptionConsumer, delivery_tag: int) -> None:
        """Hand back a message whose outcome could not be stored, after a pause.

        Publishing failed (broker blocked by an alarm, or going away) while the consumer's
        channel lives on: requeueing at once would redeliver it in a tight loop.
        """

        async def later() -> None:
            await asyncio.sleep(REQUEUE_PAUSE_S)
            await consumer.settle(delivery_tag, requeue=True)

        self._spawn(later())

    def _is_current(self, consumer: SubscriptionConsumer) -> bool:
        """False when the consumer's subscription (that incarnation) was deleted."""
        registered = self._registry.get(consumer.subscription_id)
        return registered is not None and registered.queue == consumer.queue

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """Nack with requeue: RabbitMQ puts each back where it was, same attempt header."""
        for delivery in deliveries:
            receipt = delivery.receipt
            if isinstance(receipt, Receipt) and receipt.consumer.owns(receipt):
                await receipt.consumer.settle(receipt.delivery_tag, requeue=True)

    # -- dead-letter queue ---------------------------------------------------------------

    async def dlq_count(self, topic: str, subscription_id: str | None = None) -> int:
        """Total by passive declare; per subscription by a snapshot scan."""
        session = await self._conn.session()
        if subscription_id is None:
            return await self._dlq.count(session, topic)
        async with self._dlq.scan(session, topic) as snapshot:
            return sum(1 for _, e in snapshot.entries if e.subscription_id == subscription_id)

    async def dlq_list(
        self,
        topic: str,
        subscription_id: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> DlqPage:
        """Entries ordered by id (failure time), after ``cursor`` (an entry id)."""
        session = await self._conn.session()
        async with self._dlq.scan(session, topic) as snapshot:
            chosen = [
                e
                for _, e in snapshot.entries
                if (subscription_id is None or e.subscription_id == subscription_id)
                and (cursor is None or e.id > cursor)
            ]
        chosen.sort(key=lambda e: e.id)
        return DlqPage.first(chosen, limit)

    async def dlq_redrive(
        self,
        topic: str,
        subscription_id: str | None = None,
        ids: Sequence[str] | None = None,
    ) -> int:
        """Send entries back to the subscription that failed them (attempt 1), then drop them.

        Entries of deleted subscriptions stay, as do entries whose copy was not confirmed.
        """
        session = await self._conn.session()
        await self._registry.log.catch_up(session)
        wanted = set(ids) if ids is not None else None
        async with self._dlq.scan(session, topic) as snapshot:
            moves: list[tuple[int, Outbound]] = []
            for tag, entry in snapshot.entries:
                if subscription_id is not None and entry.subscription_id != subscription_id:
                    continue
                if wanted is not None and entry.id not in wanted:
                    continue
                registered = self._registry.get(entry.subscription_id)
                if registered is None:
                    continue
                moves.append(
                    (
                        tag,
                        Outbound(
                            self.names.direct,
                            registered.queue,
                            codec.encode_envelope(entry.message),
                            codec.properties(codec.copy_headers(1)),
                        ),
                    )
                )
            results = await session.publish_each([m for _, m in moves])
            moved = 0
            for (tag, _), result in zip(moves, results, strict=True):
                if result is None:
                    await snapshot.remove(tag)
                    moved += 1
            return moved

    async def dlq_purge(
        self,
        topic: str,
        subscription_id: str | None = None,
        ids: Sequence[str] | None = None,
    ) -> int:
        """Purge the queue, or remove the selected entries from a snapshot."""
        session = await self._conn.session()
        if subscription_id is None and ids is None:
            return await self._dlq.purge_all(session, topic)
        wanted = set(ids) if ids is not None else None
        async with self._dlq.scan(session, topic) as snapshot:
            removed = 0
            for tag, entry in snapshot.entries:
                if subscription_id is not None and entry.subscription_id != subscription_id:
                    continue
                if wanted is not None and entry.id not in wanted:
                    continue
                await snapshot.remove(tag)
                removed += 1
            return removed

    # -- subscription registry -----------------------------------------------------------

    async def create_subscription(self, subscription: Subscription) -> None:
        """Declare its queue, win the id in the registry stream, then bind the queue."""
        if self._registry.get(subscription.id) is not None:
            raise SubscriptionExistsError(subscription.id)
        session = await self._conn.session()
        incarnation = uuid.uuid4().hex[:12]
        queue = self.names.subscription_queue(subscription.id, incarnation)
        try:
            admin = await session.admin_channel()
            await declare_subscription_queue(admin, queue, self.config.queue_type)
            if not await self._registry.create(session, subscription, incarnation):
                await admin.queue_delete(queue)
                raise SubscriptionExistsError(subscription.id)
            await bind_subscription_queue(
                await session.admin_channel(), self.names, queue, subscription.topic
            )
        except BROKER_ERRORS as exc:
            raise unavailable("create subscription", exc) from exc

    async def update_subscription(self, subscription: Subscription) -> None:
        """Store the new definition; every instance applies it (pause, prefetch...).

        An id unknown even after catching up with the registry is created, as the
        builtin adapter does.
        """
        session = await self._conn.session()
        if self._registry.get(subscription.id) is None:
            await self._registry.log.catch_up(session)
        if self._registry.get(subscription.id) is None:
            await self.create_subscription(subscription)
            return
        await self._registry.update(session, subscription)

    async def get_subscription(self, subscription_id: str) -> Subscription | None:
        """From the local registry; on a miss, catch up first (it may be brand new)."""
        registered = self._registry.get(subscription_id)
        if registered is None and self._conn.current is not None:
            with contextlib.suppress(BackendUnavailableError):
                await self._registry.log.catch_up(self._conn.current)
            registered = self._registry.get(subscription_id)
        return registered.subscription if registered is not None else None

    async def list_subscriptions(self, topic: str | None = None) -> list[Subscription]:
        """From the local registry (follows the stream live; polled by the dispatcher)."""
        return [
            r.subscription
            for r in self._registry.all()
            if topic is None or r.subscription.topic == topic
        ]

    async def delete_subscription(self, subscription_id: str) -> bool:
        """Record the deletion, then delete the queue (its pending messages go with it)."""
        session = await self._conn.session()
        removed = await self._registry.delete(session, subscription_id)
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
        consumer = self._consumers.get(registered.subscription.id)
        if consumer is None:
            return
        # A consumer's prefetch is fixed when it starts (basic.qos only affects new consumers,
        # and quorum queues refuse a channel-wide one): a new limit means a new consumer.
        if registered.subscription.paused or consumer.prefetch != max(
            1, registered.subscription.max_in_flight
        ):
            self._retire(consumer)

    def _on_deleted(self, registered: Registered, live: bool) -> None:
        """Stop consuming; while following live, also delete the queue (idempotent)."""
        consumer = self._consumers.get(registered.subscription.id)
        if consumer is not None:
            self._retire(consumer)
        self._scheduled.pop(registered.subscription.id, None)
        session = self._conn.current
        if live and session is not None:
            self._spawn(self._delete_queue(session, registered.queue))

    async def _pause_consumer(self, subscription_id: str) -> None:
        consumer = self._consumers.get(subscription_id)
        if consumer is not None:
            self._retire(consumer)

    # -- idempotency ----------------------------------------------------------------------

    async def claim_idempotency_key(
        self, topic: str, key: str, message_id: str, ttl_ms: int
    ) -> str | None:
        """First claim in the shared stream wins, on every instance alike."""
        session = await self._conn.session()
        return await self._keys.claim(session, topic, key, message_id, ttl_ms)

    async def release_idempotency_key(self, topic: str, key: str) -> None:
        """Append a release so every instance forgets the key."""
        session = await self._conn.session()
        await self._keys.release(session, topic, key)

    # -- introspection -------------------------------------------------------------------

    async def topic_stats(self, topic: str) -> TopicStats:
        """Figures per subscription, as exact as AMQP allows.

        Backlog comes from the broker (plus this instance's buffer); in flight and
        scheduled are what this instance knows (RabbitMQ cannot count unacked or delayed
        copies per queue over AMQP); DLQ figures come from a snapshot of the topic's DLQ.
        """
        session = await self._conn.session()
        dlq_by_sub: dict[str, int] = {}
        dlq_total = 0
        if topic in self._registry.dlq_topics:
            async with self._dlq.scan(session, topic) as snapshot:
                for _, entry in snapshot.entries:
                    dlq_by_sub[entry.subscription_id] = dlq_by_sub.get(entry.subscription_id, 0) + 1
                    dlq_total += 1
        stats = []
        for registered in self._registry.all():
            sub_id = registered.subscription.id
            if registered.subscription.topic != topic:
                continue
            ready = await self._ready(session, registered.queue)
            consumers = [c for c in (self._consumers.get(sub_id), *self._retired) if c is not None]
            mine = [c for c in consumers if c.subscription_id == sub_id]
            stats.append(
                SubscriptionStats(
                    subscription_id=sub_id,
                    backlog=ready + sum(c.buffered for c in mine),
                    in_flight=sum(len(c.leased) for c in mine),
                    scheduled=self._scheduled_count(sub_id),
                    dlq=dlq_by_sub.get(sub_id, 0),
                )
            )
        return TopicStats(topic=topic, subscriptions=stats, dlq=dlq_total)

    async def _ready(self, session: Session, queue: str) -> int:
        try:
            async with session.scratch_channel() as channel:
                result = await channel.queue_declare(queue, passive=True)
                return result.message_count or 0
        except aiormq.exceptions.ChannelNotFoundEntity:
            return 0
        except BROKER_ERRORS as exc:
            raise unavailable("queue stats", exc) from exc

    async def list_topics(self) -> list[str]:
        """Topics with subscriptions or a DLQ (a topic nobody subscribes to stores nothing)."""
        topics = {r.subscription.topic for r in self._registry.all()}
        return sorted(topics | self._registry.dlq_topics)

    # -- local bookkeeping ---------------------------------------------------------------

    def _note_scheduled(self, subscription_id: str, due_at_ms: int) -> None:
        heapq.heappush(self._scheduled.setdefault(subscription_id, []), due_at_ms)

    def _scheduled_count(self, subscription_id: str) -> int:
        heap = self._scheduled.get(subscription_id, [])
        now = now_ms()
        while heap and heap[0] <= now:
            heapq.heappop(heap)
        return len(heap)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _housekeep(self) -> None:
        """Hand back buffers of consumers nobody receives from; forget past-due schedules."""
        while True:
            await asyncio.sleep(_HOUSEKEEPING_S)
            idle_before = time.monotonic() - IDLE_CONSUMER_S
            for consumer in list(self._consumers.values()):
                if consumer.last_used < idle_before and not consumer.leased:
                    self._retire(consumer)
            self._retired = {c for c in self._retired if c.open}
            for subscription_id in list(self._scheduled):
                if not self._scheduled_count(subscription_id):
                    del self._scheduled[subscription_id]

    # -- maintenance ----------------------------------------------------------------------

    def subscription_queue(self, subscription_id: str) -> str | None:
        """Name of the subscription's queue, for operators (``rabbitmqctl``) and tests."""
        registered = self._registry.get(subscription_id)
        return registered.queue if registered is not None else None

    async def destroy(self) -> None:
        """Delete every exchange, queue and stream of this prefix (tests, decommissioning).

        Run it on a started adapter: the registry tells which subscription and DLQ queues
        exist. Messages in them are lost; this is not part of the adapter contract.
        """
        session = await self._conn.session()
        await self._registry.log.catch_up(session)
        channel = await session.admin_channel()
        queues = [r.queue for r in self._registry.all()]
        queues += [self.names.dlq(t) for t in self._registry.dlq_topics]
        queues += [self.names.ladder_queue(bit) for bit in range(LADDER_BITS)]
        queues += [self.names.registry, self.names.idempotency]
        for queue in queues:
            await channel.queue_delete(queue)
        for bit in range(LADDER_BITS):
            await channel.exchange_delete(self.names.ladder_exchange(bit))
        await channel.exchange_delete(self.names.topics)
        await channel.exchange_delete(self.names.direct)


def _usable(
    consumer: SubscriptionConsumer, session: Session, registered: Registered, prefetch: int
) -> bool:
    """True if ``consumer`` is the one to take from: same session, queue and prefetch."""
    return (
        consumer.consuming
        and consumer.generation == session.generation
        and consumer.queue == registered.queue
        and consumer.prefetch == prefetch
    )


async def _sleep_until(deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining > 0:
        await asyncio.sleep(remaining)
