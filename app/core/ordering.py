"""Timing of the ownership of ordered subscriptions (see :class:`app.core.ports.OrderingPort`).

One instance owns an ``ordering: key`` subscription at a time. It renews its ownership
every :data:`OWNERSHIP_RENEW_S`; an ownership not renewed for :data:`OWNERSHIP_TTL_MS`
(its process was killed, or stalled that long) lapses and another instance takes over,
starting with the unsettled copies of the previous owner, in publish order.
"""

from __future__ import annotations

OWNERSHIP_TTL_MS = 5_000
"""An owner silent this long loses its ordered subscriptions to another instance."""

OWNERSHIP_RENEW_S = 1.0
"""How often an owner renews, and a non-owner tries to take over."""

HOLD_FACTOR = 4
"""An ordered subscription leases at most ``HOLD_FACTOR * max_in_flight`` messages ahead."""

HOLD_MINIMUM = 64
"""...and never fewer than this, so a small ``max_in_flight`` still looks past a few busy
keys to find others."""


def hold_bound(max_in_flight: int) -> int:
    """Most deliveries an ordered subscription's worker holds (in progress plus waiting)."""
    return max(HOLD_MINIMUM, HOLD_FACTOR * max(1, max_in_flight))
