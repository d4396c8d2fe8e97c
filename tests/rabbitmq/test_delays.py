"""Retry and publish delays go through the TTL ladder: real, exact-ish, never early."""

from __future__ import annotations

import random
import time

import pytest

from app.adapters.rabbitmq import delay
from app.adapters.rabbitmq.names import LADDER_BITS, NameSpace
from app.core.models import now_ms
from tests.backends import unique
from tests.rabbitmq.conftest import OpenAdapter
from tests.rabbitmq.helpers import make_msg, make_sub, publish, receive_n


def test_route_spells_the_delay_in_binary() -> None:
    names = NameSpace("p")
    rng = random.Random(7)
    for wanted in [
        1,
        2,
        3,
        1000,
        1023,
        2**31,
        2**32 - 1,
        *(rng.randrange(1, 10**9) for _ in range(200)),
    ]:
        exchange, headers = delay.route(names, wanted)
        top = wanted.bit_length() - 1
        assert exchange == names.ladder_exchange(top)
        assert (
            sum(2**bit for bit in range(top + 1) if headers[delay.bit_header(bit)] == "1") == wanted
        )
    # one pass is capped; the remainder is sent round again by the receiving side
    assert delay.route(names, 2**40)[0] == names.ladder_exchange(LADDER_BITS - 1)
    assert delay.route(names, 0)[1] == {"hl-b0": "1"}


async def test_exponential_retry_delays_are_real(open_rabbit: OpenAdapter) -> None:
    async with open_rabbit() as adapter:
        topic = unique("backoff")
        sub = make_sub(topic)
        await adapter.create_subscription(sub)
        await publish(adapter, make_msg(topic, "x"))
        [delivery] = await receive_n(adapter, sub, 1)
        measured = []
        attempts = []
        for wait_ms in (50, 100, 200, 400, 800):  # retry_delay_ms=50, exponential
            started = time.monotonic()
            due = now_ms() + wait_ms
            await adapter.retry_at(delivery, due)
            [delivery] = await receive_n(adapter, sub, 1, within=10)
            measured.append((time.monotonic() - started) * 1000)
            attempts.append(delivery.attempt)
            assert now_ms() >= due
        assert attempts == [2, 3, 4, 5, 6]
        for wanted, got in zip((50, 100, 200, 400, 800), measured, strict=True):
            assert wanted <= got <= wanted * 1.25 + 200, measured  # real, never early
        assert measured[-1] > 6 * measured[0], measured  # exponential, not flat
        await adapter.ack([delivery])


async def test_odd_jittered_delays_are_not_rounded(open_rabbit: OpenAdapter) -> None:
    """Every delay gets its own exact path through the ladder, not a shared bucket."""
    async with open_rabbit() as adapter:
        topic = unique("jitter")
        sub = make_sub(topic, max_in_flight=50)
        await adapter.create_subscription(sub)
        await publish(adapter, *[make_msg(topic, i) for i in range(6)])
        leased = await receive_n(adapter, sub, 6)
        start = now_ms()
        waits = {
            d.message.id: w for d, w in zip(leased, (37, 113, 251, 389, 577, 731), strict=True)
        }
        for d in leased:
            await adapter.retry_at(d, start + waits[d.message.id])
        arrived: dict[str, int] = {}
        deadline = time.monotonic() + 10
        while len(arrived) < 6 and time.monotonic() < deadline:
            for d in await adapter.receive(sub, 6, 50):
                arrived[d.message.id] = now_ms() - start
                await adapter.ack([d])
        assert arrived.keys() == waits.keys()
        for message_id, wanted in waits.items():
            assert wanted <= arrived[message_id] <= wanted + 250, (wanted, arrived[message_id])


async def test_delayed_publish_fans_out_at_publish_time(open_rabbit: OpenAdapter) -> None:
    async with open_rabbit() as adapter:
        topic = unique("later")
        early = make_sub(topic)
        await adapter.create_subscription(early)
        due = now_ms() + 300
        await publish(adapter, make_msg(topic, "later"), at=due)
        late = make_sub(topic)  # created after the publish: must not get it
        await adapter.create_subscription(late)
        assert await adapter.receive(early, 1, 150) == []
        [got] = await receive_n(adapter, early, 1)
        assert got.message.data == "later"
        assert got.attempt == 1
        assert now_ms() >= due
        await adapter.ack([got])
        assert await adapter.receive(late, 1, 300) == []


async def test_delays_longer_than_one_pass_go_round_again(
    open_rabbit: OpenAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one pass capped at 63 ms, a 300 ms delay needs five passes and is still exact."""
    monkeypatch.setattr(delay, "MAX_PASS_MS", 63)
    async with open_rabbit() as adapter:
        topic = unique("passes")
        sub = make_sub(topic)
        await adapter.create_subscription(sub)
        due = now_ms() + 300
        await publish(adapter, make_msg(topic, "far"), at=due)
        [got] = await receive_n(adapter, sub, 1)
        assert now_ms() >= due
        assert got.attempt == 1
        await adapter.ack([got])
