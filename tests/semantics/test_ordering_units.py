"""The pure parts of ordering keys: the per-key gate, the hold bound, the stored fields."""

from __future__ import annotations

import asyncio

from app.core.models import Delivery, Envelope, Subscription
from app.core.ordering import HOLD_MINIMUM, hold_bound
from app.dispatch.ordering import KeyGate
from app.dispatch.wire import WireSlots


def _delivery(n: int, key: str | None) -> Delivery:
    envelope = Envelope(id=f"m{n}", topic="t", data=n, published_at=0, ordering_key=key)
    return Delivery("s", envelope, 1, n)


def test_one_delivery_per_key_the_rest_wait_in_order() -> None:
    gate = KeyGate()
    a1, a2, a3, b1, free = (
        _delivery(1, "a"),
        _delivery(2, "a"),
        _delivery(3, "a"),
        _delivery(4, "b"),
        _delivery(5, None),
    )
    assert gate.admit(a1)
    assert not gate.admit(a2)
    assert not gate.admit(a3)
    assert gate.admit(b1)  # another key is not held back
    assert gate.admit(free)  # nor is an unkeyed message
    assert gate.held == 2
    assert gate.busy() == 2
    assert gate.finish(a1) is a2
    assert gate.finish(a2) is a3
    assert gate.finish(a3) is None
    assert gate.finish(b1) is None
    assert gate.finish(free) is None
    assert gate.busy() == 0
    assert gate.held == 0


def test_handing_back_keeps_each_key_in_order() -> None:
    gate = KeyGate()
    a1, a2, b1, b2, b3 = (_delivery(n, k) for n, k in enumerate("aabbb"))
    for delivery in (a1, a2, b1, b2, b3):
        gate.admit(delivery)
    assert gate.take_key(a1) == [a2]
    assert gate.admit(_delivery(9, "a"))  # the key is idle again
    assert gate.take_all([b1]) == [b1, b2, b3]
    assert gate.held == 0


def test_hold_bound() -> None:
    assert hold_bound(1) == HOLD_MINIMUM
    assert hold_bound(100) == 400


def test_ordering_fields_round_trip() -> None:
    envelope = Envelope(id="m", topic="t", data=1, published_at=5, ordering_key="order-7")
    assert Envelope.from_dict(envelope.to_dict()) == envelope
    assert "ordering_key" not in Envelope(id="m", topic="t", data=1, published_at=5).to_dict()
    subscription = Subscription(id="s", topic="t", url="http://x", ordering="key")
    assert Subscription.from_dict(subscription.to_dict()).ordered
    legacy = subscription.to_dict()
    del legacy["ordering"]  # stored before ordering keys existed
    assert not Subscription.from_dict(legacy).ordered


async def test_wire_slots_first_come_first_served() -> None:
    limit = 1
    slots = WireSlots(lambda: limit)
    assert await slots.acquire()
    order: list[int] = []

    async def attempt(n: int) -> None:
        if await slots.acquire():
            order.append(n)

    waiting = [asyncio.create_task(attempt(n)) for n in range(3)]
    await asyncio.sleep(0)
    assert order == []  # all in line behind the one on the wire
    slots.release()
    await asyncio.sleep(0)
    assert order == [0]
    limit = 3
    slots.pump()  # a wider limit lets the rest through at once
    await asyncio.gather(*waiting)
    assert order == [0, 1, 2]
    slots.close()
    assert not await slots.acquire()
