"""Leasing messages to a subscription and ending those leases.

A lease is an unacked delivery on this instance's consumer of the subscription's queue
(:mod:`.consumer`). Its receipt is only good while that consumer's channel lives: once
the channel is gone the broker has requeued the message, and a settling call reports
that the lease is no longer ours. A retry or DLQ entry is published (confirmed) before
the original is acked, so a crash in between duplicates an attempt but never loses one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import aiormq
import aiormq.abc

from app.adapters.kit.codec import (
    DECODE_ERRORS,
    decode_envelope,
    encode_envelope,
    undecodable_entry,
)
from app.adapters.kit.timing import sleep_until
from app.adapters.rabbitmq import codec, delay
from app.adapters.rabbitmq.connection import (
    BROKER_ERRORS,
    BrokerConnection,
    Outbound,
    Session,
    unavailable,
)
from app.adapters.rabbitmq.consumer import Receipt, SubscriptionConsumer
from app.adapters.rabbitmq.consumers import ConsumerBusyError, Consumers, prefetch_of
from app.adapters.rabbitmq.dlq import DeadLetterStore
from app.adapters.rabbitmq.names import NameSpace
from app.adapters.rabbitmq.registry import Registered, SubscriptionRegistry
from app.adapters.rabbitmq.stats import ScheduledCounts
from app.core.errors import BackendUnavailableError
from app.core.models import Delivery, DlqEntry, Subscription, now_ms

logger = logging.getLogger("hookline.rabbitmq")

NO_CONSUMER_WAIT_S = 1.0
"""Longest wait for work while a subscription has no live consumer here."""

REQUEUE_PAUSE_S = 1.0
"""How long a message whose retry or DLQ entry could not be stored waits before requeue."""


class Leases:
    """receive / ack / retry_at / dead_letter / release for the RabbitMQ adapter."""

    def __init__(
        self,
        connection: BrokerConnection,
        names: NameSpace,
        registry: SubscriptionRegistry,
        consumers: Consumers,
        dlq: DeadLetterStore,
        scheduled: ScheduledCounts,
    ) -> None:
        """Collaborators shared with the facade; no I/O here."""
        self._conn = connection
        self._names = names
        self._registry = registry
        self._consumers = consumers
        self._dlq = dlq
        self._scheduled = scheduled

    # -- receive -------------------------------------------------------------------------

    async def receive(
        self, subscription: Subscription, max_count: int, wait_ms: int
    ) -> list[Delivery]:
        """Take up to ``max_count`` messages pushed by this subscription's consumer."""
        deadline = time.monotonic() + wait_ms / 1000
        registered = self._registry.get(subscription.id)
        session = self._conn.current
        if registered is not None and registered.subscription.paused:
            self._consumers.retire_subscription(subscription.id)
            registered = None
        if max_count <= 0 or session is None or registered is None:
            await sleep_until(deadline)
            return []
        try:
            consumer = await self._consumers.get(session, registered, prefetch_of(subscription))
        except BROKER_ERRORS as exc:  # an ordered one: another instance may consume it
            logger.debug("cannot consume %s yet: %s", registered.queue, exc)
            await sleep_until(deadline)
            return []
        out: list[Delivery] = []
        while True:
            remaining = 0.0 if out else max(0.0, deadline - time.monotonic())
            messages = await consumer.take(max_count - len(out), remaining)
            out += await self._sort(session, consumer, registered, messages)
            if out or time.monotonic() >= deadline or len(out) >= max_count:
                break
            if not consumer.consuming:
                await sleep_until(deadline)
                break
        return out

    async def claim_order(self, subscription: Subscription) -> bool:
        """Own an ordered subscription: be its queue's exclusive consumer.

        The broker refuses a second exclusive consumer, and when the owner's connection
        dies it puts the owner's unacked messages back ahead of newer ones (a classic queue
        where they were), so the next owner gets them first, in order.
        """
        registered = self._registry.get(subscription.id)
        session = self._conn.current
        if registered is None or session is None or registered.subscription.paused:
            return False
        try:
            consumer = await self._consumers.get(session, registered, prefetch_of(subscription))
        except ConsumerBusyError:
            return True  # our previous consumer still holds its messages: still ours
        except BROKER_ERRORS as exc:
            logger.debug("%s is consumed elsewhere: %s", registered.queue, exc)
            return False
        return consumer.consuming and consumer.exclusive

    async def release_order(self, subscription: Subscription) -> None:
        """Stop consuming (its leases were handed back): another instance may take over."""
        consumer = self._consumers.live(subscription.id)
        if consumer is not None:
            await self._consumers.hand_back(consumer)

    async def wait_for_work(self, subscription: Subscription, timeout_s: float) -> None:
        """Until the broker pushes a message to this subscription's consumer.

        Without a live consumer (an outage, a consumer being replaced) the wait is short:
        the next ``receive`` starts one.
        """
        consumer = self._consumers.live(subscription.id)
        if consumer is None or not consumer.consuming:
            await asyncio.sleep(min(timeout_s, NO_CONSUMER_WAIT_S))
            return
        await consumer.wait(timeout_s)

    async def _sort(
        self,
        session: Session,
        consumer: SubscriptionConsumer,
        registered: Registered,
        messages: list[aiormq.abc.DeliveredMessage],
    ) -> list[Delivery]:
        """Deliveries that are due; not-yet-due copies go (back) through the delay ladder.

        A body that is not a hookline envelope is dead-lettered like any failed delivery
        (a normal DLQ entry, never dropped).
        """
        deliveries: list[Delivery] = []
        later: list[tuple[aiormq.abc.DeliveredMessage, int]] = []
        now = now_ms()
        sub_id = registered.subscription.id
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
                envelope = decode_envelope(message.body)
            except DECODE_ERRORS as exc:
                topic = registered.subscription.topic
                entry = undecodable_entry(topic, sub_id, message.body, exc, attempt)
                logger.error("undecodable message in %s moved to the DLQ: %s", consumer.queue, exc)  # noqa: TRY400 - the body is at fault, not the code
                await self.dead_letter(Delivery(sub_id, entry.message, attempt, receipt), entry)
                continue
            deliveries.append(Delivery(sub_id, envelope, attempt, receipt))
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
            exchange, bits = delay.route(self._names, due - now)
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
                self._scheduled.note(consumer.subscription_id, due)
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

    # -- ending leases -------------------------------------------------------------------

    async def ack(self, deliveries: Sequence[Delivery]) -> bool:
        """Ack on the channel each came from, coalesced; False if a receipt was void."""
        batches: dict[SubscriptionConsumer, list[int]] = {}
        ours = True
        for delivery in deliveries:
            receipt = _owned(delivery)
            if receipt is None:
                ours = False
            else:
                batches.setdefault(receipt.consumer, []).append(receipt.delivery_tag)
        for consumer, tags in batches.items():
            await consumer.ack_many(tags)
        return ours

    async def retry_at(self, delivery: Delivery, due_at_ms: int) -> bool:
        """Publish attempt+1 into the ladder (or straight back if due), confirmed, then ack."""
        receipt = await self._current(delivery)
        if receipt is None:
            return False
        consumer = receipt.consumer
        wait = due_at_ms - now_ms()
        headers: dict[str, Any] = codec.copy_headers(delivery.attempt + 1, due_at_ms)
        if wait > 0:
            exchange, bits = delay.route(self._names, wait)
            headers |= bits
        else:
            exchange = self._names.direct
        message = Outbound(
            exchange,
            consumer.queue,
            encode_envelope(delivery.message),
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
            self._scheduled.note(consumer.subscription_id, due_at_ms)
        await consumer.settle(receipt.delivery_tag, None)
        return True

    async def dead_letter(self, delivery: Delivery, entry: DlqEntry) -> bool:
        """Publish the entry to the topic's DLQ (confirmed), then ack the delivery."""
        receipt = await self._current(delivery)
        if receipt is None:
            return False
        try:
            session = await self._conn.session()
            await self._dlq.queues.add(session, entry)
        except BackendUnavailableError:
            self._requeue_soon(receipt.consumer, receipt.delivery_tag)
            raise
        await receipt.consumer.settle(receipt.delivery_tag, None)
        return True

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """Nack with requeue: RabbitMQ puts each back where it was, same attempt header.

        On an ordered subscription the consumer's buffer goes back too: taken first, it
        would overtake what was just released.
        """
        ordered: set[SubscriptionConsumer] = set()
        for delivery in deliveries:
            receipt = _owned(delivery)
            if receipt is not None:
                await receipt.consumer.settle(receipt.delivery_tag, requeue=True)
                registered = self._registry.get(receipt.consumer.subscription_id)
                if registered is not None and registered.subscription.ordered:
                    ordered.add(receipt.consumer)
        for consumer in ordered:
            await self._consumers.hand_back(consumer)

    async def _current(self, delivery: Delivery) -> Receipt | None:
        """The receipt, if the lease is ours and its subscription (incarnation) still exists.

        A lease of a deleted subscription is acked away: there is nobody to retry for.
        """
        receipt = _owned(delivery)
        if receipt is None:
            return None  # the channel died: the broker already gave the original back
        registered = self._registry.get(receipt.consumer.subscription_id)
        if registered is None or registered.queue != receipt.consumer.queue:
            await receipt.consumer.settle(receipt.delivery_tag, None)
            return None
        return receipt

    def _requeue_soon(self, consumer: SubscriptionConsumer, delivery_tag: int) -> None:
        """Hand back a message whose outcome could not be stored, after a pause.

        Publishing failed (broker blocked by an alarm, or going away) while the consumer's
        channel lives on: requeueing at once would redeliver it in a tight loop.
        """

        async def later() -> None:
            await asyncio.sleep(REQUEUE_PAUSE_S)
            await consumer.settle(delivery_tag, requeue=True)

        self._consumers.spawn(later())


def _owned(delivery: Delivery) -> Receipt | None:
    """The delivery's receipt while its lease can still be settled here, else None."""
    receipt = delivery.receipt
    if isinstance(receipt, Receipt) and receipt.consumer.owns(receipt):
        return receipt
    return None
