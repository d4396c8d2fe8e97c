"""The engine's first Queue example: ``on-user-created`` and ``on-order-placed`` triggers,
and ``createUser`` publishing ``user.created`` with ``queue.enqueue``.

Run: ``make run`` in one terminal, ``.venv/bin/python -m examples.queue_triggers`` in another.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from hookline import AsyncClient, MessageContext, Triggers

logger = logging.getLogger("examples.queue_triggers")
triggers = Triggers()


@triggers.queue("on-user-created", topic="user.created")
async def on_user_created(data: Any, ctx: MessageContext) -> None:
    """Runs for every ``user.created`` message."""
    logger.info("User created: %s (message %s)", data, ctx.message_id)


@triggers.queue("on-order-placed", topic="order.placed")
async def on_order_placed(data: Any) -> None:
    """Runs for every ``order.placed`` message."""
    logger.info("Order placed: %s", data)


async def create_user(client: AsyncClient, email: str, name: str) -> dict[str, Any]:
    """The engine's ``createUser`` function: save the user, then announce it."""
    user = {"id": f"u_{uuid.uuid4().hex[:8]}", "email": email, "name": name}
    await client.call("queue.enqueue", {"topic": "user.created", "data": user})
    return user


async def demo(client: AsyncClient) -> None:
    """Create a user and place an order: each trigger logs its message."""
    await create_user(client, "ada@example.com", "Ada")
    await client.call("queue.enqueue", {"topic": "order.placed", "data": {"order_id": "o_1"}})


if __name__ == "__main__":
    from examples._run import main

    main(triggers, demo)
