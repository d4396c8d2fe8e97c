"""The engine's retry example: ``process-order`` retries 3 times, 1 s apart at first, then
dead-letters to ``orders.failed``, where ``handle-failed-orders`` picks the order up.

Run: ``make run``, then ``.venv/bin/python -m examples.retries``; a declined payment is
retried (attempts 1 to 4, about 7 s) and then handled as a failed order.
"""

from __future__ import annotations

import logging
from typing import Any

from hookline import AsyncClient, MessageContext, Triggers

logger = logging.getLogger("examples.retries")
triggers = Triggers()


class PaymentDeclinedError(Exception):
    """The payment provider said no: raising means "retry"."""


@triggers.queue(
    "process-order",
    topic="order.process",
    max_retries=3,
    retry_delay_ms=1000,
    dead_letter_topic="orders.failed",
)
async def process_order(data: Any, ctx: MessageContext) -> None:
    """Charge the order; an exception makes hookline retry it."""
    logger.info("Processing order %s (attempt %s)", data["order_id"], ctx.attempt)
    if data.get("card") == "declined":
        raise PaymentDeclinedError(f"card declined for order {data['order_id']}")
    logger.info("Order %s paid", data["order_id"])


@triggers.queue("handle-failed-orders", topic="orders.failed")
async def handle_failed_orders(data: Any, ctx: MessageContext) -> None:
    """Orders that exhausted their retries: tell someone."""
    dead = ctx.dead_letter or {}
    logger.info(
        "Failed order %s after %s attempts: %s",
        data["order_id"],
        dead.get("attempts"),
        (dead.get("last_error") or {}).get("body_excerpt"),
    )


async def demo(client: AsyncClient) -> None:
    """One order that pays, one that never will."""
    await client.call("queue.enqueue", {"topic": "order.process", "data": {"order_id": "o_ok"}})
    await client.call(
        "queue.enqueue",
        {"topic": "order.process", "data": {"order_id": "o_bad", "card": "declined"}},
    )


if __name__ == "__main__":
    from examples._run import main

    main(triggers, demo)
