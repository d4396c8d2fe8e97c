"""The per-topic DLQ: redrive to the right subscription, order kept, snapshots under a lock."""

from __future__ import annotations

import asyncio

import aio_pika

from app.adapters.rabbitmq import RabbitMQAdapter
from app.core.models import DlqEntry
from tests.backends import unique
from tests.rabbitmq.conftest import OpenAdapter
from tests.rabbitmq.helpers import dlq_entry, make_msg, make_sub, publish, receive_n


async def queue_order(adapter: RabbitMQAdapter, topic: str) -> list[str]:
    """Entry ids in the DLQ queue's own order, read with basic.get and put back untouched."""
    connection = await aio_pika.connect(adapter.settings.amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(adapter.names.dlq(topic), ensure=False)
        ids = []
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            ids.append(str((message.headers or {})["hl-dlq-id"]))
        return ids  # closing the connection requeues everything in place
    finally:
        await connection.close()


async def fail_all(adapter: RabbitMQAdapter, sub_id: str, topic: str, n: int) -> list[DlqEntry]:
    sub = await adapter.get_subscription(sub_id)
    assert sub is not None
    entries = []
    for delivery in await receive_n(adapter, sub, n):
        entry = dlq_entry(delivery)
        entries.append(entry)
        await adapter.dead_letter(delivery, entry)
    assert len(entries) == n
    return entries


async def test_redrive_entries_from_different_subscriptions(open_rabbit: OpenAdapter) -> None:
    async with open_rabbit() as adapter:
        topic = unique("multi")
        subs = [make_sub(topic, max_in_flight=20) for _ in range(3)]
        for sub in subs:
            await adapter.create_subscription(sub)
        await publish(adapter, *[make_msg(topic, i) for i in range(4)])
        # sub 0 fails everything, sub 1 fails the odd ones, sub 2 fails nothing
        await fail_all(adapter, subs[0].id, topic, 4)
        for delivery in await receive_n(adapter, subs[1], 4):
            if delivery.message.data % 2:
                await adapter.dead_letter(delivery, dlq_entry(delivery))
            else:
                await adapter.ack([delivery])
        await adapter.ack(await receive_n(adapter, subs[2], 4))
        assert await adapter.dlq_count(topic) == 6

        assert await adapter.dlq_redrive(topic) == 6
        zero = await receive_n(adapter, subs[0], 5, within=1.5)
        one = await receive_n(adapter, subs[1], 3, within=1.5)
        assert sorted(d.message.data for d in zero) == [0, 1, 2, 3]
        assert sorted(d.message.data for d in one) == [1, 3]
        assert all(d.attempt == 1 for d in zero + one)
        assert await adapter.receive(subs[2], 5, 300) == []
        await adapter.ack(zero + one)
        assert await adapter.dlq_count(topic) == 0


async def test_selective_redrive_keeps_the_rest_in_order(open_rabbit: OpenAdapter) -> None:
    async with open_rabbit() as adapter:
        topic = unique("order")
        a, b = make_sub(topic, max_in_flight=1), make_sub(topic, max_in_flight=1)
        await adapter.create_subscription(a)
        await adapter.create_subscription(b)
        await publish(adapter, *[make_msg(topic, i) for i in range(4)])
        order = []
        for _ in range(4):  # interleave: a0 b0 a1 b1 ...
            for sub in (a, b):
                [delivery] = await receive_n(adapter, sub, 1)
                entry = dlq_entry(delivery)
                order.append(entry)
                await adapter.dead_letter(delivery, entry)
        assert await queue_order(adapter, topic) == [e.id for e in order]

        assert await adapter.dlq_redrive(topic, subscription_id=a.id) == 4
        b_entries = [e.id for e in order if e.subscription_id == b.id]
        assert await queue_order(adapter, topic) == b_entries
        # redrive by ids from the middle, purge one, the rest keeps its order
        assert await adapter.dlq_redrive(topic, ids=[b_entries[1]]) == 1
        assert await adapter.dlq_purge(topic, ids=[b_entries[2]]) == 1
        assert await queue_order(adapter, topic) == [b_entries[0], b_entries[3]]
        page = await adapter.dlq_list(topic)
        assert [e.id for e in page.entries] == [b_entries[0], b_entries[3]]
        back = []
        for sub, n in ((a, 4), (b, 1)):
            for _ in range(n):  # max_in_flight=1: one at a time
                [delivery] = await receive_n(adapter, sub, 1)
                back.append(delivery.message.data)
                await adapter.ack([delivery])
        assert sorted(back) == [0, 1, 1, 2, 3]


async def test_entries_of_a_deleted_subscription_stay(open_rabbit: OpenAdapter) -> None:
    async with open_rabbit() as adapter:
        topic = unique("gone")
        gone, kept = make_sub(topic), make_sub(topic)
        await adapter.create_subscription(gone)
        await adapter.create_subscription(kept)
        await publish(adapter, make_msg(topic, "m"))
        await fail_all(adapter, gone.id, topic, 1)
        await fail_all(adapter, kept.id, topic, 1)
        assert await adapter.delete_subscription(gone.id)
        assert await adapter.dlq_redrive(topic) == 1  # only the living subscription's entry
        assert await adapter.dlq_count(topic) == 1
        [left] = (await adapter.dlq_list(topic)).entries
        assert left.subscription_id == gone.id
        assert topic in await adapter.list_topics()
        assert await adapter.dlq_purge(topic, subscription_id=gone.id) == 1
        await adapter.ack(await receive_n(adapter, kept, 1))


async def test_concurrent_scans_from_two_instances_each_see_everything(
    open_rabbit: OpenAdapter,
) -> None:
    async with open_rabbit() as one, open_rabbit() as two:
        topic = unique("lock")
        sub = make_sub(topic, max_in_flight=100)
        await one.create_subscription(sub)
        await publish(one, *[make_msg(topic, i) for i in range(60)])
        await fail_all(one, sub.id, topic, 60)
        pages = await asyncio.gather(
            *[one.dlq_list(topic, limit=1000) for _ in range(3)],
            *[two.dlq_list(topic, limit=1000) for _ in range(3)],
            one.dlq_count(topic),
            two.dlq_count(topic, sub.id),
        )
        for page in pages[:6]:
            assert len(page.entries) == 60  # type: ignore[union-attr]
        assert pages[6:] == [60, 60]
        seen: list[str] = []
        cursor = None
        while True:
            page = await two.dlq_list(topic, sub.id, limit=7, cursor=cursor)
            seen += [e.id for e in page.entries]
            if (cursor := page.next_cursor) is None:
                break
        assert len(seen) == len(set(seen)) == 60
        assert seen == sorted(seen)
        assert await two.dlq_purge(topic) == 60
