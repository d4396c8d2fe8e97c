"""Declaring exchanges and queues, with the arguments their queue type needs.

Every declaration is idempotent, so each instance re-runs them after (re)connecting.
"""

from __future__ import annotations

from typing import Any

import aiormq
import aiormq.abc

from app.adapters.rabbitmq.connection import BROKER_ERRORS, Session, unavailable
from app.adapters.rabbitmq.names import NameSpace
from app.adapters.rabbitmq.settings import QueueType


def queue_arguments(queue_type: QueueType) -> dict[str, Any]:
    """Arguments of a durable work queue (subscription queues, DLQs)."""
    return {"x-queue-type": queue_type}


async def declare_exchanges(channel: aiormq.abc.AbstractChannel, names: NameSpace) -> None:
    """The topic exchange publishes go to and the direct exchange retries come back by."""
    await channel.exchange_declare(names.topics, exchange_type="topic", durable=True)
    await channel.exchange_declare(names.direct, exchange_type="direct", durable=True)


async def declare_subscription_queue(
    channel: aiormq.abc.AbstractChannel, queue: str, queue_type: QueueType
) -> None:
    """A subscription's durable queue, not yet bound (so it receives nothing yet)."""
    await channel.queue_declare(queue, durable=True, arguments=queue_arguments(queue_type))


async def bind_subscription_queue(
    channel: aiormq.abc.AbstractChannel, names: NameSpace, queue: str, topic: str
) -> None:
    """Bind to the topic (fan-out of publishes) and to its own name on the direct exchange.

    The binding key is the topic itself: topic names are plain words separated by dots,
    never the ``*``/``#`` wildcards, so each subscription sees exactly its topic.
    """
    await channel.queue_bind(queue, names.topics, routing_key=topic)
    await channel.queue_bind(queue, names.direct, routing_key=queue)


async def declare_dlq(
    channel: aiormq.abc.AbstractChannel, queue: str, queue_type: QueueType
) -> None:
    """A topic's durable dead-letter queue."""
    await channel.queue_declare(queue, durable=True, arguments=queue_arguments(queue_type))


async def declare_stream(
    channel: aiormq.abc.AbstractChannel, name: str, arguments: dict[str, Any] | None = None
) -> None:
    """A durable stream (replicated on a cluster whatever ``queue_type`` says)."""
    await channel.queue_declare(
        name, durable=True, arguments={"x-queue-type": "stream", **(arguments or {})}
    )


async def ready_count(session: Session, queue: str) -> int:
    """Messages ready in ``queue`` by a passive declare (0 when it does not exist)."""
    try:
        async with session.scratch_channel() as channel:
            result = await channel.queue_declare(queue, passive=True)
            return result.message_count or 0
    except aiormq.exceptions.ChannelNotFoundEntity:
        return 0
    except BROKER_ERRORS as exc:
        raise unavailable(f"count of {queue}", exc) from exc
