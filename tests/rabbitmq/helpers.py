"""Small helpers shared by the RabbitMQ adapter tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from app.adapters.base import OutgoingMessage, QueueAdapter
from app.core.ids import new_dlq_id, new_message_id
from app.core.models import Delivery, DlqEntry, Envelope, LastError, Subscription, now_ms
from tests.backends import unique


def make_sub(topic: str, **fields: object) -> Subscription:
    return Subscription(id=unique("sub"), topic=topic, url="http://127.0.0.1:9/hook", **fields)  # type: ignore[arg-type]


def make_msg(topic: str, data: object = None) -> Envelope:
    return Envelope(id=new_message_id(), topic=topic, data=data, published_at=now_ms())


async def publish(adapter: QueueAdapter, *envelopes: Envelope, at: int | None = None) -> None:
    await adapter.publish([OutgoingMessage(e, at) for e in envelopes])


async def receive_n(
    adapter: QueueAdapter, sub: Subscription, n: int, within: float = 5.0
) -> list[Delivery]:
    """Receive until ``n`` deliveries arrived or the deadline passed."""
    got: list[Delivery] = []
    deadline = time.monotonic() + within
    while len(got) < n and time.monotonic() < deadline:
        got += await adapter.receive(sub, n - len(got), 100)
    return got


def dlq_entry(delivery: Delivery, reason: str = "http_error") -> DlqEntry:
    return DlqEntry(
        id=new_dlq_id(),
        topic=delivery.message.topic,
        subscription_id=delivery.subscription_id,
        message=delivery.message,
        attempts=delivery.attempt,
        last_error=LastError(reason=reason, status=500),
        failed_at=now_ms(),
    )


async def eventually(
    check: Callable[[], Awaitable[bool]], within: float = 10.0, interval: float = 0.02
) -> None:
    """Poll ``check`` until it is true; fail at the deadline (no sleeps as synchronisation)."""
    deadline = time.monotonic() + within
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(interval)
