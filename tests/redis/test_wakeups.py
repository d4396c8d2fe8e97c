"""Wake-ups are sent only to receivers that wait: an empty lease marks its subscription in
the topic's ``waiting`` set, the next copy for it takes the mark out and notifies every
instance; with nobody waiting, storing a message costs no notification."""

from __future__ import annotations

import asyncio
import time

from app.adapters.redis import RedisAdapter
from app.core.models import Subscription, now_ms
from tests.redis.conftest import OpenAdapter
from tests.redis.helpers import make_msg, make_sub, publish, receive_n

WAKE_DEADLINE_S = 4.0
"""A woken wait returns at once; without the wake-up it would last the full minute (and
at least the 5 s a disconnected subscriber caps waits at)."""


async def _waiting(adapter: RedisAdapter, topic: str) -> set[str]:
    key = adapter.names.topic(topic).waiting
    return {str(m) for m in await adapter.connection.client.smembers(key)}


async def _woken(adapter: RedisAdapter, sub: Subscription) -> None:
    await asyncio.wait_for(adapter.wait_for_work(sub, 60), WAKE_DEADLINE_S)


async def _subscribed(adapter: RedisAdapter) -> None:
    """Until the instance's wake-up subscriber listens (before that, waits are short)."""
    deadline = time.monotonic() + WAKE_DEADLINE_S
    while not adapter.wakeups.connected:
        assert time.monotonic() < deadline, "wake-up subscriber never connected"
        await asyncio.sleep(0.01)


async def test_only_an_empty_lease_asks_for_a_wake_up(open_redis: OpenAdapter) -> None:
    topic = "wake-marks"
    sub = make_sub(topic)
    async with open_redis() as adapter:
        await adapter.create_subscription(sub)
        await _subscribed(adapter)
        await publish(adapter, make_msg(topic, 1))
        assert await _waiting(adapter, topic) == set()  # nobody waited: nothing sent
        [first] = await receive_n(adapter, sub, 1)
        assert await adapter.receive(sub, 10, 0) == []
        assert await _waiting(adapter, topic) == {sub.id}
        key = adapter.names.topic(topic).waiting
        assert await adapter.connection.client.pttl(key) > 0
        waiter = asyncio.create_task(_woken(adapter, sub))
        await publish(adapter, make_msg(topic, 2))
        await waiter
        assert await _waiting(adapter, topic) == set()
        second = await receive_n(adapter, sub, 1)
        await adapter.ack([first, *second])


async def test_a_copy_for_one_subscription_leaves_the_others_marks(
    open_redis: OpenAdapter,
) -> None:
    topic = "wake-one"
    busy, idle = make_sub(topic), make_sub(topic)
    async with open_redis() as adapter:
        await adapter.create_subscription(busy)
        await adapter.create_subscription(idle)
        await _subscribed(adapter)
        await publish(adapter, make_msg(topic, "m"))
        [leased] = await receive_n(adapter, busy, 1)
        [other] = await receive_n(adapter, idle, 1)
        await adapter.ack([other])
        assert await adapter.receive(idle, 10, 0) == []
        assert await _waiting(adapter, topic) == {idle.id}
        # a retry due now goes to busy's own stream: busy was not waiting, idle still is
        assert await adapter.retry_at(leased, now_ms()) is True
        assert await _waiting(adapter, topic) == {idle.id}
        [again] = await receive_n(adapter, busy, 1)
        assert again.attempt == 2
        assert await adapter.receive(busy, 10, 0) == []
        assert await _waiting(adapter, topic) == {idle.id, busy.id}
        waiter = asyncio.create_task(_woken(adapter, busy))
        await adapter.release([again])  # back to busy's own stream: busy is woken
        await waiter
        assert await _waiting(adapter, topic) == {idle.id}
        await adapter.ack(await receive_n(adapter, busy, 1))


async def test_one_publish_wakes_the_waiting_receivers_of_every_instance(
    open_redis: OpenAdapter,
) -> None:
    topic = "wake-all"
    sub = make_sub(topic)
    async with open_redis() as one, open_redis() as two:
        await one.create_subscription(sub)
        for adapter in (one, two):
            await _subscribed(adapter)
            assert await adapter.receive(sub, 10, 0) == []
        waiters = [asyncio.create_task(_woken(a, sub)) for a in (one, two)]
        await publish(one, make_msg(topic, "x"))
        await asyncio.gather(*waiters)
        got = await receive_n(one, sub, 1)
        await one.ack(got)
