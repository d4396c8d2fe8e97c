"""Coalesced acks never cover a message that is still leased."""

from __future__ import annotations

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
