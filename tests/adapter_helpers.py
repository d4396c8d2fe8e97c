"""Builders shared by every adapter-level test suite (contract, Redis, RabbitMQ)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.adapters.factory import build_adapter
from app.core.ids import new_dlq_id, new_message_id
from app.core.models import Delivery, DlqEntry, Envelope, LastError, Subscription, now_ms
from app.core.ports import OutgoingMessage, QueueAdapter
from tests.backends import isolated_adapter_config, unique


def make_sub(topic: str, **fields: object) -> Subscription:
    """A subscription with a unique id (its URL is never called at adapter level)."""
    return Subscription(id=unique("sub"), topic=topic, url="http://127.0.0.1:9/hook", **fields)  # type: ignore[arg-type]


def make_msg(topic: str, data: object = None) -> Envelope:
    """A message as the publisher would build it."""
    return Envelope(id=new_message_id(), topic=topic, data=data, published_at=now_ms())


async def publish(adapter: QueueAdapter, *envelopes: Envelope, at: int | None = None) -> None:
    """Publish envelopes, optionally not before ``at`` (epoch ms)."""
    await adapter.publish([OutgoingMessage(e, at) for e in envelopes])


async def receive_n(
    adapter: QueueAdapter,
    sub: Subscription,
    n: int,
    within_s: float = 5.0,
    wait_ms: int = 200,
) -> list[Delivery]:
    """Receive until ``n`` deliveries arrived or the deadline passed."""
    got: list[Delivery] = []
    deadline = time.monotonic() + within_s
    while len(got) < n and time.monotonic() < deadline:
        got += await adapter.receive(sub, n - len(got), wait_ms)
    return got


def dlq_entry(
    delivery: Delivery,
    topic: str | None = None,
    reason: str = "http_error",
    body_excerpt: str | None = "boom",
) -> DlqEntry:
    """The DLQ entry the dispatcher would make for ``delivery``."""
    return DlqEntry(
        id=new_dlq_id(),
        topic=topic or delivery.message.topic,
        subscription_id=delivery.subscription_id,
        message=delivery.message,
        attempts=delivery.attempt,
        last_error=LastError(reason=reason, status=500, body_excerpt=body_excerpt),
        failed_at=now_ms(),
    )


@asynccontextmanager
async def two_adapters(kind: str) -> AsyncIterator[tuple[QueueAdapter, QueueAdapter]]:
    """Two started adapters on one isolated backend, as two hookline processes would have."""
    async with isolated_adapter_config(kind) as config:
        first, second = build_adapter(kind, config), build_adapter(kind, config)
        await first.start()
        await second.start()
        try:
            yield first, second
        finally:
            await second.close()
            await first.close()
