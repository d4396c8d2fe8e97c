"""Two adapters on one file, as two processes would be: shared work, prompt wake-ups."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from app.adapters.sqlite.wakeups import SEEK_EACH_UP_TO
from app.core.models import Delivery
from tests.adapter_helpers import make_msg, make_sub, publish
from tests.backends import unique
from tests.sqlite.conftest import OpenAdapter


async def test_work_published_by_one_wakes_a_receiver_of_the_other(
    open_sqlite: OpenAdapter,
) -> None:
    topic = unique("wake")
    sub = make_sub(topic)
    async with open_sqlite() as publisher, open_sqlite() as consumer:
        await publisher.create_subscription(sub)
        assert await consumer.receive(sub, 1, 50) == []  # now waiting with nothing due
        waiting = asyncio.create_task(consumer.receive(sub, 1, 5_000))
        await asyncio.sleep(0.1)  # the receiver is parked on its wait
        started = time.monotonic()
        await publish(publisher, make_msg(topic, "hello"))
        [got] = await waiting
        assert got.message.data == "hello"
        assert time.monotonic() - started < 1.0  # one poll interval, not the whole wait
        assert await consumer.ack([got]) is True


async def test_two_adapters_never_lease_the_same_copy(open_sqlite: OpenAdapter) -> None:
    topic = unique("split")
    sub = make_sub(topic)
    async with open_sqlite() as first, open_sqlite() as second:
        await first.create_subscription(sub)
        await publish(first, *[make_msg(topic, i) for i in range(500)])
        # Both hold leases at once: the second never gets what the first holds.
        held_first = await first.receive(sub, 7, 100)
        held_second = await second.receive(sub, 7, 100)
        assert len(held_first) == len(held_second) == 7
        assert not {d.message.data for d in held_first} & {d.message.data for d in held_second}
        seen: Counter[int] = Counter(d.message.data for d in held_first + held_second)
        assert await first.ack(held_first) is True
        assert await second.ack(held_second) is True

        async def drain(adapter: object) -> None:
            while sum(seen.values()) < 500:
                got: list[Delivery] = await adapter.receive(sub, 7, 100)  # type: ignore[attr-defined]
                seen.update(d.message.data for d in got)
                assert await adapter.ack(got) is True  # type: ignore[attr-defined]

        # Racing to the end, which one wins each batch is the scheduler's choice.
        await asyncio.wait_for(asyncio.gather(drain(first), drain(second)), 60)
        assert seen == Counter(range(500))  # each exactly once


async def test_with_many_waiters_another_process_wakes_just_the_one_with_work(
    open_sqlite: OpenAdapter,
) -> None:
    """Past SEEK_EACH_UP_TO waiters, the watcher walks the subscriptions that have copies
    instead of seeking each waiter (issue 11: 10,000 subscriptions in one process).
    """
    subs = [make_sub(unique("many")) for _ in range(SEEK_EACH_UP_TO * 3)]
    async with open_sqlite() as publisher, open_sqlite() as consumer:
        for sub in subs:
            await publisher.create_subscription(sub)
        for sub in subs:  # every one now waits, with nothing due
            assert await consumer.receive(sub, 1, 0) == []
        target = subs[len(subs) // 2]
        waiting = asyncio.create_task(consumer.receive(target, 1, 5_000))
        others = [asyncio.create_task(consumer.receive(s, 1, 5_000)) for s in subs[:3]]
        await asyncio.sleep(0.1)  # the receivers are parked on their waits
        started = time.monotonic()
        await publish(publisher, make_msg(target.topic, "only you"))
        [got] = await waiting
        assert got.message.data == "only you"
        assert time.monotonic() - started < 1.0  # one poll interval, not the whole wait
        assert not any(task.done() for task in others)  # nobody else was woken with work
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
