"""Small helpers shared by the RabbitMQ adapter tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from app.core.models import Delivery, DlqEntry, Subscription
from app.core.ports import QueueAdapter
from tests.adapter_helpers import dlq_entry as shared_dlq_entry
from tests.adapter_helpers import make_msg, make_sub, publish
from tests.adapter_helpers import receive_n as shared_receive_n

__all__ = ["dlq_entry", "eventually", "make_msg", "make_sub", "publish", "receive_n"]


async def receive_n(
    adapter: QueueAdapter, sub: Subscription, n: int, within: float = 5.0
) -> list[Delivery]:
    """Receive until ``n`` deliveries arrived or the deadline passed (short receive waits)."""
    return await shared_receive_n(adapter, sub, n, within_s=within, wait_ms=100)


def dlq_entry(delivery: Delivery, reason: str = "http_error") -> DlqEntry:
    """The DLQ entry the dispatcher would make (no body excerpt)."""
    return shared_dlq_entry(delivery, reason=reason, body_excerpt=None)


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
