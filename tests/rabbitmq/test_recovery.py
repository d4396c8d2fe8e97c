"""Deleted subscriptions, restarted adapters, foreign messages, changed limits."""

from __future__ import annotations

import aio_pika
import pytest

from app.adapters.rabbitmq import RabbitMQAdapter
from app.core.models import now_ms
from tests.backends import unique
from tests.rabbitmq.conftest import OpenAdapter
from tests.rabbitmq.helpers import dlq_entry, make_msg, make_sub, publish, receive_n


async def queue_exists(adapter: RabbitMQAdapter, name: str) -> bool:
    connection = await aio_pika.connect(adapter.settings.amqp_url)
    try:
        channel = await connection.channel()
        try:
            await channel.declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return False
        return True
    finally:
        await connection.close()


async def test_a_deleted_subscription_is_not_resurrected(open_rabbit: OpenAdapter) -> None:
    async with open_rabbit() as adapter:
        topic = unique("gone")
        sub = make_sub(topic)
        await adapter.create_subscription(sub)
        queue = adapter.subscription_queue(sub.id)
        assert queue is not None
        await publish(adapter, make_msg(topic, "x"), make_msg(topic, "y"))
        leased = await receive_n(adapter, sub, 2)
        assert await adapter.delete_subscription(sub.id)
        assert await adapter.receive(sub, 10, 50) == []
        assert not await queue_exists(adapter, queue)
        # ending leases of a deleted subscription is harmless and keeps nothing
        await adapter.retry_at(leased[0], now_ms() + 10_000)
        await adapter.dead_letter(leased[1], dlq_entry(leased[1]))
        await adapter.ack(leased)
        assert await adapter.dlq_count(topic) == 0
        assert await adapter.receive(sub, 10, 50) == []
        assert not await queue_exists(adapter, queue)


async def test_retries_delays_and_dlq_survive_an_adapter_restart(open_rabbit: OpenAdapter) -> None:
    topic = unique("restart")
    sub = make_sub(topic)
    async with open_rabbit() as first:
        await first.create_subscription(sub)
        await publish(first, make_msg(topic, "retry"), make_msg(topic, "dead"))
        retry, dead = await receive_n(first, sub, 2)
        due = now_ms() + 400
        await first.retry_at(retry, due)
        await first.dead_letter(dead, dlq_entry(dead))
        delayed_due = now_ms() + 300
        await publish(first, make_msg(topic, "delayed"), at=delayed_due)
        await publish(first, make_msg(topic, "unread"))

    async with open_rabbit() as second:  # a new process on the same broker and prefix
        assert await second.get_subscription(sub.id) == sub
        assert await second.dlq_count(topic, sub.id) == 1
        arrived: dict[str, int] = {}
        got = []
        while len(got) < 3:
            batch = await receive_n(second, sub, 1)
            assert batch, f"only {got} arrived"
            got += batch
            arrived[batch[0].message.data] = now_ms()
        assert sorted((d.message.data, d.attempt) for d in got) == [
            ("delayed", 1),
            ("retry", 2),
            ("unread", 1),
        ]
        assert arrived["delayed"] >= delayed_due  # however long the restart took,
        assert arrived["retry"] >= due  # nothing came early
        await second.ack(got)
        assert await second.dlq_redrive(topic) == 1
        [redriven] = await receive_n(second, sub, 1)
        assert (redriven.message.data, redriven.attempt) == ("dead", 1)
        await second.ack([redriven])


async def test_a_long_receive_wakes_for_a_scheduled_retry_on_time(open_rabbit: OpenAdapter) -> None:
    async with open_rabbit() as adapter:
        topic = unique("precise")
        sub = make_sub(topic)
        await adapter.create_subscription(sub)
        lateness = []
        for i in range(5):
            await publish(adapter, make_msg(topic, i))
            [delivery] = await receive_n(adapter, sub, 1)
            due = now_ms() + 150
            await adapter.retry_at(delivery, due)
            [again] = await adapter.receive(sub, 1, 2000)  # one long wait, as the dispatcher
            lateness.append(now_ms() - due)
            await adapter.ack([again])
        assert min(lateness) >= 0
        assert max(lateness) < 100, lateness


async def test_a_foreign_message_goes_to_the_dlq_not_to_the_bin(open_rabbit: OpenAdapter) -> None:
    async with open_rabbit() as adapter:
        topic = unique("foreign")
        sub = make_sub(topic)
        await adapter.create_subscription(sub)
        connection = await aio_pika.connect(adapter.settings.amqp_url)
        try:
            channel = await connection.channel()
            exchange = await channel.get_exchange(adapter.names.topics, ensure=False)
            await exchange.publish(aio_pika.Message(b"not json {"), routing_key=topic)
        finally:
            await connection.close()
        await publish(adapter, make_msg(topic, "fine"))
        [fine] = await receive_n(adapter, sub, 1)
        assert fine.message.data == "fine"
        await adapter.ack([fine])
        [entry] = (await adapter.dlq_list(topic)).entries
        assert entry.last_error.reason == "undecodable"
        assert entry.message.data == "not json {"
        assert entry.subscription_id == sub.id
        # a normal, time-sortable DLQ id: it pages in failure order like any other entry
        assert entry.id.startswith("dlq_")
        assert entry.message.id.startswith("msg_")
        await publish(adapter, make_msg(topic, "later"))
        [later] = await receive_n(adapter, sub, 1)
        assert await adapter.dead_letter(later, dlq_entry(later, topic)) is True
        first = await adapter.dlq_list(topic, limit=1)
        assert [e.id for e in first.entries] == [entry.id]
        second = await adapter.dlq_list(topic, limit=1, cursor=first.next_cursor)
        assert [e.message.data for e in second.entries] == ["later"]


@pytest.mark.parametrize("queue_type", ["classic"])
async def test_prefetch_follows_max_in_flight(open_rabbit: OpenAdapter) -> None:
    async with open_rabbit() as adapter:
        topic = unique("prefetch")
        sub = make_sub(topic, max_in_flight=2)
        await adapter.create_subscription(sub)
        await publish(adapter, *[make_msg(topic, i) for i in range(10)])
        first = await receive_n(adapter, sub, 2)
        assert await adapter.receive(sub, 10, 200) == []  # 2 unacked = the limit
        wider = sub.with_changes(max_in_flight=5)
        await adapter.update_subscription(wider)
        await adapter.ack(first)
        second = await receive_n(adapter, wider, 5)
        assert len(second) == 5
        assert await adapter.receive(wider, 10, 200) == []
        await adapter.ack(second)
        assert len(await receive_n(adapter, wider, 3)) == 3
