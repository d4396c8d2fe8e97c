"""Message deadlines: when a message stops being worth delivering.

A publisher gives ``expires_at`` (RFC 3339 text or epoch milliseconds) or ``ttl_ms``
(relative to the publish); the message stores one absolute ``expires_at`` in epoch ms.
The dispatcher never starts an attempt after it and never schedules a retry past it: such
a message is dead-lettered with reason :data:`EXPIRED_REASON`.
"""

from __future__ import annotations

from datetime import datetime

EXPIRED_REASON = "expired"
"""The DLQ reason of a message whose deadline passed before it could be delivered."""


class DeadlineError(ValueError):
    """A deadline the publisher gave cannot hold (in the past, before the delay, both forms)."""

    def __init__(self, field: str, message: str) -> None:
        """``field`` names the request field at fault (``expires_at``, ``ttl_ms``)."""
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def parse_expires_at(value: int | str) -> int:
    """Epoch milliseconds from an RFC 3339 timestamp (with a zone) or from epoch ms.

    Raises :class:`DeadlineError` for text that is not an RFC 3339 date-time with an
    offset (a naive time would silently depend on the server's zone).
    """
    if isinstance(value, int):
        if value < 0:
            raise DeadlineError("expires_at", "epoch milliseconds cannot be negative")
        return value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise DeadlineError(
            "expires_at", f"not an RFC 3339 date-time or epoch milliseconds: {value!r}"
        ) from exc
    if moment.tzinfo is None or "T" not in value.upper():
        raise DeadlineError(
            "expires_at",
            "an RFC 3339 date-time needs a time and an offset (e.g. 2030-01-01T00:00:00Z)",
        )
    return int(moment.timestamp() * 1000)


def resolve_deadline(
    expires_at: int | str | None, ttl_ms: int | None, delay_ms: int, now: int
) -> int | None:
    """The absolute deadline (epoch ms) of a message published at ``now``, or ``None``.

    Refused (:class:`DeadlineError`): both forms at once, a deadline not after ``now``, and
    a deadline at or before the end of ``delay_ms`` (the message could never be attempted).
    """
    if expires_at is not None and ttl_ms is not None:
        raise DeadlineError("ttl_ms", "give expires_at or ttl_ms, not both")
    if ttl_ms is not None:
        if ttl_ms <= 0:
            raise DeadlineError("ttl_ms", "must be greater than 0")
        deadline = now + ttl_ms
    elif expires_at is not None:
        deadline = parse_expires_at(expires_at)
        if deadline <= now:
            raise DeadlineError("expires_at", "is in the past")
    else:
        return None
    if delay_ms and deadline <= now + delay_ms:
        field = "ttl_ms" if ttl_ms is not None else "expires_at"
        raise DeadlineError(
            field, f"the deadline falls before the delay ends (delay_ms {delay_ms})"
        )
    return deadline


def expired(expires_at: int | None, at_ms: int) -> bool:
    """True when a message with this deadline may no longer be attempted at ``at_ms``."""
    return expires_at is not None and at_ms >= expires_at
