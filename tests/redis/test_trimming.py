"""Streams shrink only below what every subscription has acknowledged."""

from __future__ import annotations

from app.adapters.redis import RedisAdapter
from tests.redis.conftest import OpenAdapter
from tests.redis.helpers import make_msg, make_sub, publish, receive_n


async def _stream_len(adapter: RedisAdapter, topic: str) -> int:
    return int(await adapter.connection.client.xlen(adapter.names.topic(topic).stream))


async def test_trim_keeps_everything_a_lagging_or_pending_group_needs(
    open_redis: OpenAdapter,
) -> None:
    async with open_redis(trim_interval_ms=3_600_000) as adapter:
        topic = "trim"
        fast, slow, idle = make_sub(topic), make_sub(topic), make_sub(topic)
        for sub in (fast, slow, idle):
            await adapter.create_subscription(sub)
        await publish(adapter, *[make_msg(topic, i) for i in range(20)])

        await adapter.ack(await receive_n(adapter, fast, 20))
        assert await adapter.maintenance.trim(topic) == 0  # idle has read nothing
        assert await _stream_len(adapter, topic) == 20

        await adapter.ack(await receive_n(adapter, idle, 20))
        slow_batch = await receive_n(adapter, slow, 10)
        await adapter.ack(slow_batch[:4] + slow_batch[5:])  # #4 stays pending
        removed = await adapter.maintenance.trim(topic)
        assert removed == 4  # entries 0..3: acked by every group
        assert await _stream_len(adapter, topic) == 16

        # the pending entry survives trimming and is still redelivered after a release
        await adapter.release([slow_batch[4]])
        [again] = await receive_n(adapter, slow, 1)
        assert again.message.data == 4
        await adapter.ack([again])
        rest = await receive_n(adapter, slow, 10)
        assert [d.message.data for d in rest] == list(range(10, 20))
        await adapter.ack(rest)
        await adapter.maintenance.trim(topic)
        assert await _stream_len(adapter, topic) == 1  # the last entry marks the position


async def test_trim_waits_while_a_subscription_has_lost_its_group(
    open_redis: OpenAdapter,
) -> None:
    async with open_redis(trim_interval_ms=3_600_000) as adapter:
        topic = "trim-lost"
        keep, lost = make_sub(topic), make_sub(topic)
        await adapter.create_subscription(keep)
        await adapter.create_subscription(lost)
        await publish(adapter, *[make_msg(topic, i) for i in range(5)])
        await adapter.ack(await receive_n(adapter, keep, 5))
        tk = adapter.names.topic(topic)
        await adapter.connection.client.xgroup_destroy(tk.stream, lost.id)
        assert await adapter.maintenance.trim(topic) == -1
        assert await _stream_len(adapter, topic) == 5
        got = await receive_n(adapter, lost, 5)  # recovered from its origin: nothing lost
        assert sorted(d.message.data for d in got) == list(range(5))
        await adapter.ack(got)


async def test_maintenance_round_trims_in_the_background(open_redis: OpenAdapter) -> None:
    async with open_redis(trim_interval_ms=50) as adapter:
        topic = "trim-bg"
        sub = make_sub(topic)
        await adapter.create_subscription(sub)
        await publish(adapter, *[make_msg(topic, i) for i in range(30)])
        await adapter.ack(await receive_n(adapter, sub, 30))
        for _ in range(200):
            if await _stream_len(adapter, topic) == 1:
                break
            await adapter.receive(sub, 1, 20)  # waits 20 ms; also proves nothing reappears
        assert await _stream_len(adapter, topic) == 1


async def test_last_subscription_deleted_frees_the_stream(open_redis: OpenAdapter) -> None:
    async with open_redis() as adapter:
        topic = "nobody-left"
        sub = make_sub(topic)
        await adapter.create_subscription(sub)
        await publish(adapter, *[make_msg(topic, i) for i in range(3)])
        await adapter.delete_subscription(sub.id)
        assert await _stream_len(adapter, topic) == 0
        await publish(adapter, make_msg(topic, "to nobody"))  # stored nowhere
        assert await _stream_len(adapter, topic) == 0
