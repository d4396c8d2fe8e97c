"""The registry stream and the idempotency stream, seen from several instances."""

from __future__ import annotations

import asyncio

import pytest

from app.adapters.rabbitmq import RabbitMQAdapter
from app.core.errors import SubscriptionExistsError
from app.core.ids import new_message_id
from tests.backends import unique
from tests.rabbitmq.conftest import OpenAdapter
from tests.rabbitmq.helpers import eventually, make_msg, make_sub, publish, receive_n


async def test_a_second_instance_sees_every_change(open_rabbit: OpenAdapter) -> None:
    async with open_rabbit() as one, open_rabbit() as two:
        topic = unique("shared")
        sub = make_sub(topic)
        await one.create_subscription(sub)
        assert await two.get_subscription(sub.id) == sub  # a miss catches up first

        async def listed() -> bool:
            return [s.id for s in await two.list_subscriptions(topic)] == [sub.id]

        await eventually(listed)
        paused = sub.with_changes(paused=True, max_in_flight=7)
        await one.update_subscription(paused)

        async def updated() -> bool:
            return await two.get_subscription(sub.id) == paused

        await eventually(updated)
        # paused on every instance: messages wait, nobody receives them
        await publish(two, make_msg(topic, "waits"))
        assert await two.receive(paused, 1, 200) == []
        resumed = paused.with_changes(paused=False)
        await two.update_subscription(resumed)
        [got] = await receive_n(one, resumed, 1)
        assert got.message.data == "waits"
        await one.ack([got])

        assert await two.delete_subscription(sub.id) is True

        async def gone() -> bool:
            return await one.list_subscriptions(topic) == []

        await eventually(gone)
        assert await one.delete_subscription(sub.id) is False
        other = make_sub(topic)
        await two.create_subscription(other)
        with pytest.raises(SubscriptionExistsError):
            await one.create_subscription(other)


async def test_racing_creations_of_one_id_have_one_winner(open_rabbit: OpenAdapter) -> None:
    async with open_rabbit() as one, open_rabbit() as two:
        sub_id = unique("race")
        first = make_sub(unique("t1")).with_changes(id=sub_id)
        second = make_sub(unique("t2")).with_changes(id=sub_id)
        results = await asyncio.gather(
            one.create_subscription(first), two.create_subscription(second), return_exceptions=True
        )
        assert sorted(type(r).__name__ for r in results) == ["NoneType", "SubscriptionExistsError"]
        winner = first if results[0] is None else second
        assert await one.get_subscription(sub_id) == winner
        assert await two.get_subscription(sub_id) == winner
        # the loser's queue is gone and the winner's queue works
        await publish(one, make_msg(winner.topic, "ok"))
        [got] = await receive_n(two, winner, 1)
        await two.ack([got])


async def test_a_new_instance_replays_the_registry(open_rabbit: OpenAdapter) -> None:
    async with open_rabbit() as one:
        subs = [make_sub(unique("replay")) for _ in range(5)]
        for sub in subs:
            await one.create_subscription(sub)
        await one.delete_subscription(subs[2].id)
    async with open_rabbit() as fresh:
        assert await fresh.ping() is True  # ready means caught up
        assert [s.id for s in await fresh.list_subscriptions()] == [
            s.id for s in subs if s is not subs[2]
        ]


async def test_idempotency_keys_are_shared(open_rabbit: OpenAdapter) -> None:
    async with open_rabbit() as one, open_rabbit() as two:
        topic = unique("idem")
        first, second = new_message_id(), new_message_id()
        assert await one.claim_idempotency_key(topic, "k", first, 60_000) is None
        assert await two.claim_idempotency_key(topic, "k", second, 60_000) == first
        await two.release_idempotency_key(topic, "k")

        async def released() -> bool:
            return await one.claim_idempotency_key(topic, "k", second, 60_000) is None

        await eventually(released)
        # simultaneous claims of a fresh key on two instances: exactly one wins
        results = await asyncio.gather(
            *[
                adapter.claim_idempotency_key(topic, "fresh", new_message_id(), 60_000)
                for adapter in (one, two, one, two)
            ]
        )
        assert results.count(None) == 1
        assert len({r for r in results if r is not None}) == 1


async def test_instances_compete_for_one_subscription(open_rabbit: OpenAdapter) -> None:
    async with open_rabbit() as one, open_rabbit() as two:
        topic = unique("compete")
        sub = make_sub(topic, max_in_flight=10)
        await one.create_subscription(sub)
        await eventually(lambda: _knows(two, sub.id))
        await publish(one, *[make_msg(topic, i) for i in range(40)])
        got: dict[str, list[object]] = {"one": [], "two": []}

        async def drain(name: str, adapter: RabbitMQAdapter) -> None:
            while len(got["one"]) + len(got["two"]) < 40:
                deliveries = await adapter.receive(sub, 10, 100)
                got[name] += [d.message.data for d in deliveries]
                await asyncio.sleep(0.01)  # a slow receiver, so both get a share
                await adapter.ack(deliveries)

        await asyncio.wait_for(asyncio.gather(drain("one", one), drain("two", two)), 20)
        assert sorted(got["one"] + got["two"]) == list(range(40))  # each exactly once
        assert got["one"]
        assert got["two"]


async def _knows(adapter: RabbitMQAdapter, sub_id: str) -> bool:
    return await adapter.get_subscription(sub_id) is not None
