"""The engine's condition example: ``high-priority-orders`` only sees orders whose
``priority`` is ``high`` (a CEL condition evaluated by hookline, not by the handler).

Run: ``make run``, then ``.venv/bin/python -m examples.conditions``.
"""

from __future__ import annotations

import logging
from typing import Any

from hookline import AsyncClient, Triggers

logger = logging.getLogger("examples.conditions")
triggers = Triggers()


@triggers.queue("high-priority-orders", topic="orders.created", condition="data.priority == 'high'")
async def high_priority_orders(data: Any) -> None:
    """Only high-priority orders reach this handler."""
    logger.info("Urgent order: %s", data["order_id"])


async def demo(client: AsyncClient) -> None:
    """A low- and a high-priority order: only the second is handled."""
    for order_id, priority in (("o_low", "low"), ("o_high", "high")):
        await client.publish("orders.created", {"order_id": order_id, "priority": priority})


if __name__ == "__main__":
    from examples._run import main

    main(triggers, demo)
