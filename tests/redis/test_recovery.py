"""Lost consumer groups and adapter restarts: nothing accepted is lost."""

from __future__ import annotations

import time

from app.adapters.redis import RedisAdapter
from app.core.models import now_ms
from tests.redis.conftest import OpenAdapter
from tests.redis.helpers import (
    dlq_entry,
    make_msg,
    make_sub,
    publish,
    receive_n,
)


async def test_group_destroyed_under_a_live_subscription_is_recreated(
    open_redis: OpenAdapter,
) -> None:
    async with open_redis() as adapter:
        topic = "orders.created"
        sub = make_sub(topic)
        await adapter.create_subscription(sub)
        await publish(adapter, make_msg(topic, "before"))
        [first] = await receive_n(adapter, sub, 1)
        await adapter.ack([first])

        tk = adapter.names.topic(topic)
        client = adapter.connection.client
        await client.xgroup_destroy(tk.stream, sub.id)
        await publish(adapter, make_msg(topic, "during"))  # published while the group is gone

        got = await receive_n(adapter, sub, 2, within_s=3)
        data = [d.message.data for d in got]
        assert "during" in data  # never skipped; "before" may come again (at-least-once)
        await adapter.ack(got)
        await publish(adapter, make_msg(topic, "after"))
        [after] = await receive_n(adapter, sub, 1)
        assert after.message.data == "after"
        await adapter.ack([after])


async def test_stream_deleted_under_a_live_subscription_recovers(open_redis: OpenAdapter) -> None:
    async with open_redis() as adapter:
        topic = "billing.paid"
        sub = make_sub(topic)
        await adapter.create_subscription(sub)
        tk = adapter.names.topic(topic)
        await adapter.connection.client.delete(tk.stream, tk.queue(sub.id))
        await publish(adapter, make_msg(topic, 1), make_msg(topic, 2))
        got = await receive_n(adapter, sub, 2)
        assert [d.message.data for d in got] == [1, 2]
        await adapter.ack(got)
        # a retry goes through the subscription's own (recreated) stream
        await publish(adapter, make_msg(topic, 3))
        [third] = await receive_n(adapter, sub, 1)
        await adapter.retry_at(third, now_ms())
        [again] = await receive_n(adapter, sub, 1)
        assert (again.message.data, again.attempt) == (3, 2)
        await adapter.ack([again])


async def test_a_deleted_subscription_is_not_resurrected_by_its_receive_loop(
    open_redis: OpenAdapter,
) -> None:
    async with open_redis() as adapter:
        topic = "gone"
        sub = make_sub(topic)
        await adapter.create_subscription(sub)
        await publish(adapter, make_msg(topic, "x"))
        [leased] = await receive_n(adapter, sub, 1)
        assert await adapter.delete_subscription(sub.id)
        assert await adapter.receive(sub, 10, 50) == []
        tk = adapter.names.topic(topic)
        assert not await adapter.connection.client.exists(tk.stream, tk.queue(sub.id))
        # ending a lease of a deleted subscription is harmless and leaves nothing behind
        await adapter.retry_at(leased, now_ms() + 10_000)
        await adapter.dead_letter(leased, dlq_entry(leased, topic))
        await adapter.ack([leased])
        assert not await adapter.connection.client.exists(tk.schedule(sub.id))
        assert await adapter.dlq_count(topic) == 0


async def test_retries_delays_and_dlq_survive_an_adapter_restart(open_redis: OpenAdapter) -> None:
    topic = "restart"
    sub = make_sub(topic)
    async with open_redis() as first:
        await first.create_subscription(sub)
        await publish(first, make_msg(topic, "retry"), make_msg(topic, "dead"))
        retry, dead = await receive_n(first, sub, 2)
        due = now_ms() + 400
        await first.retry_at(retry, due)
        await first.dead_letter(dead, dlq_entry(dead, topic))
        await publish(first, make_msg(topic, "delayed"), at=now_ms() + 300)
        await publish(first, make_msg(topic, "unread"))

    async with open_redis() as second:  # a new process on the same Redis and prefix
        assert await second.get_subscription(sub.id) == sub
        assert await second.dlq_count(topic, sub.id) == 1
        [unread] = await receive_n(second, sub, 1)
        assert unread.message.data == "unread"
        got = await receive_n(second, sub, 2)
        assert now_ms() >= due - 5
        assert sorted((d.message.data, d.attempt) for d in got) == [("delayed", 1), ("retry", 2)]
        await second.ack([unread, *got])
        assert await second.dlq_redrive(topic) == 1
        [redriven] = await receive_n(second, sub, 1)
        assert (redriven.message.data, redriven.attempt) == ("dead", 1)
        await second.ack([redriven])


async def test_scheduled_retry_lands_within_50ms_of_due(open_redis: OpenAdapter) -> None:
    async with open_redis() as adapter:
        topic = "precise"
        sub = make_sub(topic)
        await adapter.create_subscription(sub)
        lateness = []
        for i in range(5):
            await publish(adapter, make_msg(topic, i))
            [delivery] = await receive_n(adapter, sub, 1)
            due = now_ms() + 150
            await adapter.retry_at(delivery, due)
            # one long receive, as the dispatcher does: the timer must wake it on time
            [again] = await adapter.receive(sub, 1, 2000)
            lateness.append(now_ms() - due)
            await adapter.ack([again])
        assert min(lateness) >= -5
        # the timer wakes the blocked receive: without it, nothing would come within the
        # 2 s wait; the median bounds precision, the max tolerates one stall of a busy CI
        assert sorted(lateness)[len(lateness) // 2] < 50, lateness
        assert max(lateness) < 500, lateness


async def test_close_removes_this_process_consumer_when_it_holds_nothing(
    open_redis: OpenAdapter,
) -> None:
    topic = "tidy"
    sub = make_sub(topic)
    async with open_redis() as adapter:
        await adapter.create_subscription(sub)
        await publish(adapter, make_msg(topic, 1))
        await adapter.ack(await receive_n(adapter, sub, 1))
        stream = adapter.names.topic(topic).stream
        client_adapter: RedisAdapter = adapter
        assert await client_adapter.connection.client.xinfo_consumers(stream, sub.id)
    async with open_redis() as observer:
        started = time.monotonic()
        consumers = await observer.connection.client.xinfo_consumers(stream, sub.id)
        assert consumers == [], (consumers, time.monotonic() - started)
