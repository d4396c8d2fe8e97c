"""The consumers of this instance: one live consumer per subscription, plus retired ones.

A consumer is retired (stopped receiving) when its subscription is paused, deleted or
given a new ``max_in_flight``, or when nobody received from it for a while; it lingers
until the messages it leased are settled, so their receipts stay valid.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from app.adapters.rabbitmq.connection import Session
from app.adapters.rabbitmq.consumer import SubscriptionConsumer
from app.adapters.rabbitmq.registry import Registered
from app.core.models import Subscription
from app.core.ordering import hold_bound

IDLE_CONSUMER_S = 30.0
"""A consumer nobody has received from (nor waits on) for this long hands its buffer back."""

HOUSEKEEPING_S = 5.0

Heal = Callable[[Session, Registered], Awaitable[None]]
"""Make sure a subscription's queue exists and is bound (idempotent)."""


class Consumers:
    """Consumers by subscription, and the background tasks that settle and retire them.

    A subscription's queue is healed (declared if missing, bound again) the first time
    this instance consumes it on a connection, instead of every queue at connect: a
    second instance with ten thousand subscriptions is ready at once, and each queue is
    still checked before anyone here waits on it.
    """

    def __init__(self, heal: Heal | None = None) -> None:
        """No consumer until the first ``receive``; ``heal`` runs before the first one
        of each queue on each connection.
        """
        self._heal = heal
        self._healed: set[tuple[int, str]] = set()
        self._live: dict[str, SubscriptionConsumer] = {}
        self._retired: set[SubscriptionConsumer] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def of(self, subscription_id: str) -> list[SubscriptionConsumer]:
        """The live and retired consumers of one subscription (for its figures)."""
        current = self._live.get(subscription_id)
        lingering = [c for c in self._retired if c.subscription_id == subscription_id]
        return [current, *lingering] if current is not None else lingering

    async def get(
        self, session: Session, registered: Registered, prefetch: int
    ) -> SubscriptionConsumer:
        """The consumer to take from, started (or replaced) when needed."""
        sub_id = registered.subscription.id
        prefetch = max(1, prefetch)
        current = self._live.get(sub_id)
        if current is not None and _usable(current, session, registered, prefetch):
            return current  # the hot path: no lock
        async with self._locks.setdefault(sub_id, asyncio.Lock()):
            current = self._live.get(sub_id)
            if current is not None and _usable(current, session, registered, prefetch):
                return current
            if registered.subscription.ordered and self.lingering(sub_id):
                raise ConsumerBusyError(sub_id)
            if current is not None:
                self.retire(current)
            await self.healed(session, registered)
            consumer = SubscriptionConsumer(
                sub_id,
                registered.queue,
                prefetch,
                session.generation,
                exclusive=registered.subscription.ordered,
            )
            try:
                await consumer.start(session)
            except BaseException:
                await consumer.stop()
                raise
            self._live[sub_id] = consumer
            return consumer

    async def healed(self, session: Session, registered: Registered) -> None:
        """Heal the queue unless done on this connection already."""
        key = (session.generation, registered.queue)
        if self._heal is None or key in self._healed:
            return
        await self._heal(session, registered)
        self._healed.add(key)

    def known_healthy(self, session: Session, queue: str) -> None:
        """``queue`` was just declared and bound on ``session`` (no heal needed)."""
        self._healed.add((session.generation, queue))

    def live(self, subscription_id: str) -> SubscriptionConsumer | None:
        """The subscription's live consumer, if one is running."""
        return self._live.get(subscription_id)

    def retire(self, consumer: SubscriptionConsumer) -> None:
        """Stop a consumer; it lingers until its leased messages are settled."""
        if self._live.get(consumer.subscription_id) is consumer:
            del self._live[consumer.subscription_id]
        self._retired.add(consumer)
        self.spawn(consumer.pause())

    async def hand_back(self, consumer: SubscriptionConsumer) -> None:
        """An ordered subscription's consumer after a release: everything pushed to it goes
        back where it was, ahead of anything a later consumer gets.

        With no lease left its channel is closed now (the broker requeues what was in
        transit too, in place); otherwise it lingers, cancelled, and no new consumer of
        the subscription starts in this process until it closed (:meth:`get`).
        """
        if self._live.get(consumer.subscription_id) is consumer:
            del self._live[consumer.subscription_id]
        if consumer.leased:
            self._retired.add(consumer)
            await consumer.pause()
        else:
            await consumer.stop()

    def lingering(self, subscription_id: str) -> bool:
        """True while a retired consumer of the subscription still has its channel open."""
        return any(c.subscription_id == subscription_id and c.open for c in self._retired)

    def retire_subscription(self, subscription_id: str) -> None:
        """Retire the subscription's live consumer, if any (paused or deleted)."""
        consumer = self._live.get(subscription_id)
        if consumer is not None:
            self.retire(consumer)

    def follow(self, registered: Registered) -> None:
        """A subscription changed: a paused one, or one with a new limit, needs a new consumer.

        A consumer's prefetch is fixed when it starts (basic.qos only affects new
        consumers, and quorum queues refuse a channel-wide one).
        """
        consumer = self._live.get(registered.subscription.id)
        if consumer is None:
            return
        subscription = registered.subscription
        if (
            subscription.paused
            or consumer.prefetch != prefetch_of(subscription)
            or consumer.exclusive != subscription.ordered
        ):
            self.retire(consumer)

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        """Run ``coroutine`` in the background; :meth:`close` cancels what is left."""
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def forget_all(self) -> None:
        """The connection died: every consumer's channel is void (the broker requeued)."""
        self._live.clear()
        self._retired.clear()
        self._healed.clear()

    def housekeep(self) -> None:
        """Hand back buffers of consumers nobody receives from; drop closed retired ones."""
        idle_before = time.monotonic() - IDLE_CONSUMER_S
        for consumer in list(self._live.values()):
            if consumer.last_used < idle_before and not consumer.leased and not consumer.waiting:
                self.retire(consumer)
        self._retired = {c for c in self._retired if c.open}

    async def close(self) -> None:
        """Cancel background work and stop every consumer (unacked messages go back)."""
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for consumer in [*self._live.values(), *self._retired]:
            await consumer.stop()
        self.forget_all()


class ConsumerBusyError(RuntimeError):
    """An ordered subscription's previous consumer still holds messages here: a new one
    would get later messages before those went back.
    """


def prefetch_of(subscription: Subscription) -> int:
    """Unacked messages the broker pushes to the subscription's consumer: ``max_in_flight``,
    or an ordered subscription's hold bound (it keeps waiting and retrying keyed messages
    unacked).
    """
    if subscription.ordered:
        return hold_bound(subscription.max_in_flight)
    return max(1, subscription.max_in_flight)


def _usable(
    consumer: SubscriptionConsumer, session: Session, registered: Registered, prefetch: int
) -> bool:
    """True if ``consumer`` is the one to take from: same session, queue and prefetch."""
    return (
        consumer.consuming
        and consumer.generation == session.generation
        and consumer.queue == registered.queue
        and consumer.prefetch == prefetch
        and consumer.exclusive == registered.subscription.ordered
    )
