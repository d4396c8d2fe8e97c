"""Identifiers: sortable by creation time, unique without coordination between instances."""

from __future__ import annotations

import os
import secrets
import time

_last = [0, 0]  # last (milliseconds, random part) issued by this process
_RANDOM_BITS = 80


def new_id(prefix: str) -> str:
    """A ULID-like id (``msg_<12 hex ms><20 hex random>``): sortable, unique without
    coordination.

    Monotonic within a process (the random part counts up inside one millisecond), so ids
    sort in creation order, which DLQ cursors rely on. Hex keeps it cheap to make.
    """
    millis = time.time_ns() // 1_000_000
    if millis <= _last[0]:
        millis = _last[0]
        rand = (_last[1] + 1) & ((1 << _RANDOM_BITS) - 1)
    else:
        rand = int.from_bytes(os.urandom(10), "big") >> 1
    _last[0], _last[1] = millis, rand
    return f"{prefix}_{millis:012x}{rand:020x}"


def new_message_id() -> str:
    """Id of a published message (also the ``webhook-id`` header)."""
    return new_id("msg")


def new_message_ids(count: int) -> list[str]:
    """``count`` message ids at once, as ``count`` calls of :func:`new_message_id` would give.

    A batch is published within one millisecond: one clock read and one random draw, then
    the random part counts up, exactly as consecutive single calls in that millisecond do.
    Only the last three hex digits change between neighbours, so they come from a table
    (formatting an 80-bit number per id cost more than the rest of making an envelope).
    """
    if count <= 1:
        return [new_id("msg")] if count else []
    first = new_id("msg")
    millis, rand = _last
    last = rand + count - 1
    ids = [first]
    if last >> _RANDOM_BITS:  # the random part wraps (never in practice): one at a time
        mask = (1 << _RANDOM_BITS) - 1
        ids.extend(f"msg_{millis:012x}{(rand + s) & mask:020x}" for s in range(1, count))
    else:
        value = rand + 1
        while value <= last:
            block_end = min(last, value | 0xFFF)
            prefix = f"msg_{millis:012x}{value >> 12:017x}"
            ids.extend([prefix + tail for tail in _HEX3[value & 0xFFF : (block_end & 0xFFF) + 1]])
            value = block_end + 1
    _last[1] = last & ((1 << _RANDOM_BITS) - 1)
    return ids


_HEX3 = [f"{n:03x}" for n in range(0x1000)]


def new_dlq_id() -> str:
    """Id of one DLQ entry."""
    return new_id("dlq")


def new_subscription_id() -> str:
    """Id given to a subscription created without one."""
    return new_id("sub")


def new_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` + base64 of 24 random bytes."""
    import base64

    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
