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
    """
    if count <= 1:
        return [new_id("msg")] if count else []
    first = new_id("msg")
    millis, rand = _last
    mask = (1 << _RANDOM_BITS) - 1
    head = f"msg_{millis:012x}"
    ids = [first]
    ids.extend([f"{head}{(rand + step) & mask:020x}" for step in range(1, count)])
    _last[1] = (rand + count - 1) & mask
    return ids


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
