"""The ordering role (:class:`app.core.ports.OrderingPort`) of every adapter: one owner
leases an ordered subscription, in publish order; a release keeps that order; a new owner
starts with the previous owner's unsettled copies, in order."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from app.core.models import Envelope
from app.core.ports import OrderingPort, QueueAdapter
from tests.adapter_helpers import make_msg, make_sub, publish, receive_n, two_adapters
from tests.backends import unique


def _keyed(topic: str, n: int) -> list[Envelope]:
    return [_with_key(make_msg(topic, i)) for i in range(n)]


def _with_key(envelope: Envelope) -> Envelope:
    return Envelope(
        id=envelope.id,
        topic=envelope.topic,
        data=envelope.data,
        published_at=envelope.published_at,
        ordering_key="k",
    )


async def _own(adapter: QueueAdapter, sub: object, within_s: float = 15.0) -> None:
    assert isinstance(adapter, OrderingPort)
    deadline = time.monotonic() + within_s
    while not await adapter.claim_order(sub):  # type: ignore[arg-type]
        assert time.monotonic() < deadline, "ownership not taken over in time"
        await receive_n(adapter, sub, 0, within_s=0.2)  # type: ignore[arg-type]


async def test_a_release_keeps_publish_order(adapter: QueueAdapter) -> None:
    topic = unique("ord")
    sub = make_sub(topic, ordering="key")
    await adapter.create_subscription(sub)
    await publish(adapter, *_keyed(topic, 8))
    if isinstance(adapter, OrderingPort):
        await _own(adapter, sub)
    first = await receive_n(adapter, sub, 5)
    assert [d.message.data for d in first] == [0, 1, 2, 3, 4]
    await adapter.release(first)
    again = await receive_n(adapter, sub, 8)
    assert [d.message.data for d in again] == list(range(8))
    assert all(d.message.ordering_key == "k" for d in again)
    assert await adapter.ack(again)


@pytest.fixture(params=["redis", "rabbitmq", "sqlite"])
async def two_instances(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[QueueAdapter, QueueAdapter]]:
    """Two adapters on one backend, as two hookline processes would have."""
    async with two_adapters(str(request.param)) as pair:
        yield pair


async def test_one_owner_and_a_takeover_in_order(
    two_instances: tuple[QueueAdapter, QueueAdapter],
) -> None:
    first, second = two_instances
    assert isinstance(first, OrderingPort)
    assert isinstance(second, OrderingPort)
    topic = unique("ord")
    sub = make_sub(topic, ordering="key")
    await first.create_subscription(sub)
    deadline = time.monotonic() + 10
    while await second.get_subscription(sub.id) is None:
        assert time.monotonic() < deadline
        await receive_n(second, sub, 0, within_s=0.1)
    await publish(first, *_keyed(topic, 10))
    await _own(first, sub)
    assert not await second.claim_order(sub)
    assert await second.receive(sub, 10, 100) == []  # not the owner: leases nothing
    held = await receive_n(first, sub, 4)
    assert [d.message.data for d in held] == [0, 1, 2, 3]
    await first.close()  # gone without settling (as a crash leaves it)
    await _own(second, sub)
    taken = await receive_n(second, sub, 10, within_s=10)
    assert [d.message.data for d in taken] == list(range(10))
