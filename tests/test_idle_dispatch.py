"""Idle cost of the dispatcher does not grow with subscriptions (issue 11, defect 1).

An idle subscription's loop parks on the adapter's ``wait_for_work`` instead of polling
``receive`` twice a second, and the supervisor looks at the registry only when its
version token changed, and then reads only what changed. Checked on the builtin
adapter, with real HTTP deliveries.
"""

from __future__ import annotations

import asyncio

from app.adapters.builtin import BuiltinQueueAdapter
from app.core.models import Delivery, Subscription
from app.core.ports import OutgoingMessage
from app.core.publisher import Publisher
from app.dispatch.condition_pool import ConditionPool
from app.dispatch.context import DeliveryContext
from app.dispatch.sender import WebhookSender
from app.dispatch.supervisor import Dispatcher
from app.observability.metrics import DispatchMetrics
from tests.adapter_helpers import make_msg
from tests.process import until
from tests.receiver import Receiver

IDLE_SUBSCRIPTIONS = 200


class CountingAdapter(BuiltinQueueAdapter):
    """The builtin adapter, counting the calls an idle dispatcher makes."""

    def __init__(self) -> None:
        super().__init__()
        self.receives = 0
        self.lists = 0

    async def receive(
        self, subscription: Subscription, max_count: int, wait_ms: int
    ) -> list[Delivery]:
        self.receives += 1
        return await super().receive(subscription, max_count, wait_ms)

    async def list_subscriptions(self, topic: str | None = None) -> list[Subscription]:
        self.lists += 1
        return await super().list_subscriptions(topic)


async def test_idle_subscriptions_cost_no_calls_and_wake_on_work(receiver: Receiver) -> None:
    adapter = CountingAdapter()
    subs = [
        Subscription(id=f"idle-{i}", topic=f"idle.{i}", url=receiver.url(f"/idle/{i}"))
        for i in range(IDLE_SUBSCRIPTIONS)
    ]
    for sub in subs:
        await adapter.create_subscription(sub)
    sender = WebhookSender("hookline-test")
    await sender.start()
    metrics = DispatchMetrics()
    context = DeliveryContext(
        adapter=adapter,
        sender=sender,
        publisher=Publisher(adapter, counter=metrics),
        metrics=metrics,
        conditions=ConditionPool(),
    )
    dispatcher = Dispatcher(context, poll_interval_s=0.01)
    dispatcher.start()
    try:
        await until(lambda: _true(adapter.receives >= IDLE_SUBSCRIPTIONS), what="loops started")
        receives, lists = adapter.receives, adapter.lists
        await asyncio.sleep(1.0)  # an idle window: 100 registry polls, 400 old receive polls
        assert adapter.receives - receives == 0, "idle loops must not poll receive"
        assert adapter.lists - lists == 0, "an unchanged registry must not be re-read"

        await adapter.publish([OutgoingMessage(make_msg("idle.7", {"n": 7}))])
        [request] = await receiver.wait_for(1, "/idle/7", within_s=5)
        assert request.json()["data"] == {"n": 7}

        late = Subscription(id="late", topic="idle.late", url=receiver.url("/late"))
        await adapter.create_subscription(late)  # another instance's change: no poke
        await until(lambda: _true("late" in dispatcher._workers), what="the change followed")
        await adapter.publish([OutgoingMessage(make_msg("idle.late", {"n": 1}))])
        await receiver.wait_for(1, "/late", within_s=5)
        assert adapter.lists == lists, "one change is read alone, not with the whole registry"
    finally:
        await dispatcher.stop()
        await sender.close()


async def _true(value: bool) -> bool:
    return value
