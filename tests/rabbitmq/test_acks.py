"""Coalesced acks never cover a message that is still leased."""

from __future__ import annotations

from app.adapters.rabbitmq.consumer import _FAST_DELIVER
from tests.backends import unique
from tests.rabbitmq.conftest import OpenAdapter
from tests.rabbitmq.helpers import make_msg, make_sub, publish, receive_n


async def test_out_of_order_acks_release_exactly_what_they_should(open_rabbit: OpenAdapter) -> None:
    topic = unique("acks")
    sub = make_sub(topic, max_in_flight=20)
    async with open_rabbit() as adapter:
        await adapter.create_subscription(sub)
        await publish(adapter, *[make_msg(topic, i) for i in range(12)])
        leased = await receive_n(adapter, sub, 12)
        by_data = {d.message.data: d for d in leased}
        await adapter.ack([by_data[i] for i in (7, 9)])  # above a leased one: one by one
        await adapter.ack([by_data[i] for i in (2, 0, 1)])  # a prefix: one multiple ack
        await adapter.release([by_data[i] for i in (3, 4)])
        again = await receive_n(adapter, sub, 2)
        assert sorted(d.message.data for d in again) == [3, 4]
        await adapter.ack([by_data[i] for i in (5, 6, 8)])  # 3 and 4 re-leased: still a prefix
        await adapter.ack(again)
        # 10 and 11 are still leased when this instance goes away
    async with open_rabbit() as other:
        back = await receive_n(other, sub, 12, within=1.5)
        assert sorted(d.message.data for d in back) == [10, 11]
        await other.ack(back)


async def test_a_batch_of_acks_is_one_frame_and_deliveries_need_no_task(
    open_rabbit: OpenAdapter,
) -> None:
    topic = unique("ackframes")
    sub = make_sub(topic, max_in_flight=64)
    async with open_rabbit() as adapter:
        await adapter.create_subscription(sub)
        await publish(adapter, *[make_msg(topic, i) for i in range(40)])
        leased = await receive_n(adapter, sub, 40)
        consumer = adapter.consumers.live(sub.id)
        assert consumer is not None
        # deliveries reach the buffer without aiormq's task per message (aiormq 7.x)
        assert _FAST_DELIVER
        before = consumer.writes
        await adapter.ack(leased)  # 40 >= prefetch / 4: flushed now, one multiple ack
        assert consumer.writes == before + 1
        await publish(adapter, make_msg(topic, "after"))
        [after] = await receive_n(adapter, sub, 1)
        assert after.message.data == "after"  # nothing acked twice, nothing redelivered
        await adapter.ack([after])
