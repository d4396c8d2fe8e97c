"""Leases of a silent consumer are taken over after the visibility timeout, never before."""

from __future__ import annotations

import asyncio
import time

from app.core.models import Delivery, now_ms
from tests.redis.conftest import OpenAdapter
from tests.redis.helpers import dlq_entry, make_msg, make_sub, publish, receive_n

FAST_CLAIM = {"visibility_timeout_ms": 600, "lease_margin_ms": 0, "claim_interval_ms": 20}

CLOCK_SLACK_S = 0.01
"""Redis stamps a delivery with the clock it cached for the event-loop turn that ran the
lease, up to a few ms before the script ran; ``leased_at`` is read here after the reply."""


async def test_a_dead_consumers_lease_is_taken_over_after_visibility_not_before(
    open_redis: OpenAdapter,
) -> None:
    topic = "takeover"
    sub = make_sub(topic, timeout_ms=100)
    async with open_redis(**FAST_CLAIM) as dead, open_redis(**FAST_CLAIM) as alive:
        await dead.create_subscription(sub)
        await publish(dead, make_msg(topic, "m"))
        [lost] = await receive_n(dead, sub, 1)  # "dead" never ends this lease
        leased_at = time.monotonic()

        early = []
        while time.monotonic() - leased_at < 0.45:
            early += await alive.receive(sub, 10, 50)
        assert early == []

        [taken] = await receive_n(alive, sub, 1, within_s=3)
        assert time.monotonic() - leased_at >= 0.6 - CLOCK_SLACK_S
        assert (taken.message.id, taken.attempt) == (lost.message.id, 1)

        # the old holder's late outcome must not schedule a second copy, and says so
        assert await dead.retry_at(lost, now_ms()) is False
        assert await dead.dead_letter(lost, dlq_entry(lost)) is False
        assert await dead.dlq_count(topic) == 0
        assert await alive.ack([taken]) is True
        assert await alive.receive(sub, 10, 300) == []


async def test_visibility_never_undercuts_the_delivery_timeout(open_redis: OpenAdapter) -> None:
    topic = "slow-receiver"
    sub = make_sub(topic, timeout_ms=900)
    settings = {"visibility_timeout_ms": 100, "lease_margin_ms": 300, "claim_interval_ms": 20}
    async with open_redis(**settings) as holder, open_redis(**settings) as other:
        await holder.create_subscription(sub)
        await publish(holder, make_msg(topic, "slow"))
        [held] = await receive_n(holder, sub, 1)
        leased_at = time.monotonic()
        while time.monotonic() - leased_at < 1.0:  # timeout 900 + margin 300 = 1.2 s
            assert await other.receive(sub, 10, 50) == []
        [taken] = await receive_n(other, sub, 1, within_s=3)
        assert time.monotonic() - leased_at >= 1.2 - CLOCK_SLACK_S
        assert taken.message.id == held.message.id
        await other.ack([taken])


async def test_a_dead_consumers_whole_backlog_is_claimed_promptly(open_redis: OpenAdapter) -> None:
    topic = "backlog"
    sub = make_sub(topic, timeout_ms=50)
    settings = {**FAST_CLAIM, "visibility_timeout_ms": 200, "claim_interval_ms": 400}
    async with open_redis(**settings) as dead, open_redis(**settings) as alive:
        await dead.create_subscription(sub)
        await publish(dead, *[make_msg(topic, i) for i in range(250)])
        assert len(await receive_n(dead, sub, 250)) == 250
        await asyncio.sleep(0.45)  # the time under test: past visibility, all are claimable
        # batches of 10: claiming goes on while full batches come back; once per interval
        # it would take 25 x 0.4 s, far past the 2 s this loop is given
        started = time.monotonic()
        got: list[Delivery] = []
        while len(got) < 250 and time.monotonic() - started < 2:
            batch = await alive.receive(sub, 10, 50)
            got += batch
            await alive.ack(batch)
        assert sorted(d.message.data for d in got) == list(range(250))


async def test_receive_never_returns_more_than_max_count(open_redis: OpenAdapter) -> None:
    async with open_redis() as adapter:
        topic = "bounded"
        sub = make_sub(topic)
        await adapter.create_subscription(sub)
        await publish(adapter, *[make_msg(topic, i) for i in range(6)])
        leased = await receive_n(adapter, sub, 6)
        for delivery in leased[:3]:
            await adapter.retry_at(delivery, now_ms())  # own stream: 3 entries
        await adapter.release(leased[3:5])  # own stream: 2 more
        await publish(adapter, *[make_msg(topic, i) for i in range(6, 10)])  # topic: 4 new
        batch = await adapter.receive(sub, 4, 500)
        assert len(batch) == 4
        rest = await receive_n(adapter, sub, 5)
        seen = sorted(d.message.data for d in [*batch, *rest])
        assert seen == [0, 1, 2, 3, 4, 6, 7, 8, 9]
        await adapter.ack([*batch, *rest, leased[5]])
        assert await adapter.receive(sub, 10, 100) == []


async def test_two_consumers_share_a_subscription_without_duplicates(
    open_redis: OpenAdapter,
) -> None:
    topic = "shared"
    sub = make_sub(topic)
    async with open_redis() as first, open_redis() as second:
        await first.create_subscription(sub)
        await publish(first, *[make_msg(topic, i) for i in range(200)])
        seen: list[int] = []
        deadline = time.monotonic() + 5
        while len(seen) < 200 and time.monotonic() < deadline:
            for adapter in (first, second):
                got = await adapter.receive(sub, 25, 50)
                seen += [d.message.data for d in got]
                await adapter.ack(got)
        assert sorted(seen) == list(range(200))
