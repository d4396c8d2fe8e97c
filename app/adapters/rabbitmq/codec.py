"""What a hookline copy carries beside its body: attempt and due time in AMQP headers.

The body is the shared storage form of :mod:`app.adapters.kit.codec`.
"""

from __future__ import annotations

from typing import Any

from pamqp.commands import Basic

ATTEMPT = "hl-attempt"
"""Header: the attempt number this copy is on (1 for the first try)."""

DUE = "hl-due"
"""Header: epoch ms before which the copy must not be delivered (delayed publish, retries)."""

PERSISTENT = 2


PLAIN = Basic.Properties(content_type="application/json", delivery_mode=PERSISTENT)
"""The properties of a copy without headers (a first attempt due now): shared, never
mutated, so its encoding is computed once (:mod:`.frames`)."""


def properties(headers: dict[str, Any] | None = None) -> Basic.Properties:
    """Persistent JSON message properties (the shared :data:`PLAIN` without headers).

    No message id: the publisher sets one on mandatory messages only, so a publisher
    return matches its message uniquely.
    """
    if not headers:
        return PLAIN
    return Basic.Properties(
        content_type="application/json",
        delivery_mode=PERSISTENT,
        headers=headers,
    )


def copy_headers(attempt: int, due_at_ms: int | None = None) -> dict[str, Any]:
    """Headers of one subscription's copy."""
    headers: dict[str, Any] = {ATTEMPT: attempt}
    if due_at_ms is not None:
        headers[DUE] = due_at_ms
    return headers


def header_int(headers: dict[str, Any] | None, name: str, default: int | None) -> int | None:
    """An integer header, tolerating its absence or a foreign type."""
    if not headers or name not in headers:
        return default
    value = headers[name]
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
