"""Identifiers: sortable by creation time, unique without coordination between instances."""

from __future__ import annotations

import os
import secrets
import time

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        chars.append(_CROCKFORD[rem])
    return "".join(reversed(chars))


_last = [0, 0]  # last (milliseconds, random part) issued by this process


def new_id(prefix: str) -> str:
    """A ULID-like id (``msg_01h...``): 48-bit ms timestamp + 80 random bits.

    Monotonic within a process (the random part counts up inside one millisecond), so ids
    sort in creation order, which DLQ cursors rely on.
    """
    millis = time.time_ns() // 1_000_000
    if millis <= _last[0]:
        millis = _last[0]
        rand = _last[1] + 1
    else:
        rand = int.from_bytes(os.urandom(10), "big") >> 1
    _last[0], _last[1] = millis, rand
    return f"{prefix}_{_encode(millis, 10)}{_encode(rand, 16)}"


def new_message_id() -> str:
    """Id of a published message (also the ``webhook-id`` header)."""
    return new_id("msg")


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
