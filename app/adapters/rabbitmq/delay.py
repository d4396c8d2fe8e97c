"""Delays without a plugin: a ladder of TTL queues, one per power of two milliseconds.

A delay of ``d`` ms is spent as its binary digits: the message visits stage ``k`` (a
queue whose ``x-message-ttl`` is 2^k ms) for every bit ``k`` set in ``d``, highest
first, and skips the others. Each stage dead-letters to the decision exchange of the
next lower bit; a headers exchange per bit routes on the message's ``hl-b<k>`` header
("1": wait in stage ``k``, "0": go straight on). After bit 0 the message reaches the
direct exchange and, by its unchanged routing key, the one subscription queue it belongs
to. So every delay is exact to the millisecond (plus about a millisecond per hop), any
number of distinct delays shares 32 queues, and every queue holds messages of a single
TTL, so messages always expire at the head, in order.

Longer delays than one pass allows come back early with their ``hl-due`` header still in
the future; the receiving side sends them round again for the remainder.
"""

from __future__ import annotations

from typing import Any

import aiormq.abc

from app.adapters.rabbitmq.names import LADDER_BITS, NameSpace
from app.adapters.rabbitmq.settings import QueueType

MAX_PASS_MS = 2**LADDER_BITS - 1
"""The longest delay one pass through the ladder gives."""


def bit_header(bit: int) -> str:
    """Name of the header that says whether stage ``bit`` is part of this delay."""
    return f"hl-b{bit}"


def route(names: NameSpace, delay_ms: int) -> tuple[str, dict[str, Any]]:
    """Exchange to publish to and the headers spelling ``delay_ms`` (1 ms at least)."""
    delay = min(max(delay_ms, 1), MAX_PASS_MS)
    top = delay.bit_length() - 1
    headers = {bit_header(bit): "1" if delay >> bit & 1 else "0" for bit in range(top + 1)}
    return names.ladder_exchange(top), headers


def stage_arguments(names: NameSpace, queue_type: QueueType, bit: int) -> dict[str, Any]:
    """Arguments of stage ``bit``: its TTL and where expired messages go next."""
    arguments: dict[str, Any] = {
        "x-queue-type": queue_type,
        "x-message-ttl": 2**bit,
        "x-dead-letter-exchange": names.ladder_exchange(bit - 1) if bit else names.direct,
    }
    if queue_type == "quorum":
        # Quorum queues can dead-letter at-least-once (the default is at-most-once).
        arguments["x-dead-letter-strategy"] = "at-least-once"
        arguments["x-overflow"] = "reject-publish"
    return arguments


async def declare_ladder(
    channel: aiormq.abc.AbstractChannel, names: NameSpace, queue_type: QueueType
) -> None:
    """Declare the 32 stage queues and their decision exchanges (idempotent).

    The 128 declarations are pipelined (``nowait``) and closed by one synchronous call,
    which fails if any of them did: a start costs one round trip, not 128.
    """
    for bit in range(LADDER_BITS):
        await channel.exchange_declare(
            names.ladder_exchange(bit), exchange_type="headers", durable=True, nowait=True
        )
    for bit in range(LADDER_BITS):
        exchange = names.ladder_exchange(bit)
        queue = names.ladder_queue(bit)
        await channel.queue_declare(
            queue, durable=True, arguments=stage_arguments(names, queue_type, bit), nowait=True
        )
        await channel.queue_bind(
            queue, exchange, arguments={"x-match": "all", bit_header(bit): "1"}, nowait=True
        )
        await channel.exchange_bind(
            names.ladder_exchange(bit - 1) if bit else names.direct,
            exchange,
            arguments={"x-match": "all", bit_header(bit): "0"},
            nowait=True,
        )
    await channel.exchange_declare(names.ladder_exchange(LADDER_BITS - 1), passive=True)


async def ladder_depth(channel: aiormq.abc.AbstractChannel, names: NameSpace) -> int:
    """Messages waiting anywhere in the ladder (all subscriptions together)."""
    total = 0
    for bit in range(LADDER_BITS):
        result = await channel.queue_declare(names.ladder_queue(bit), passive=True)
        total += result.message_count or 0
    return total
