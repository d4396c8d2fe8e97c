"""The retry schedule: how long to wait before attempt n+1."""

from __future__ import annotations

import random

from app.core.models import RetryPolicy


def retry_delay_ms(policy: RetryPolicy, retry_number: int, rng: random.Random | None = None) -> int:
    """Delay before retry ``retry_number`` (1 for the first retry).

    ``fixed``: ``retry_delay_ms``. ``exponential``: ``min(max_delay_ms, retry_delay_ms *
    2^(n-1))``. Then ``jitter`` (a fraction) spreads it by +-that share, never above
    ``max_delay_ms`` nor below zero, so a burst of failures does not retry in lockstep.
    """
    if retry_number < 1:
        raise ValueError("retry_number starts at 1")
    if policy.backoff == "fixed":
        base = float(policy.retry_delay_ms)
    else:
        # Cap the exponent so huge retry counts cannot overflow float arithmetic.
        base = float(policy.retry_delay_ms) * 2.0 ** min(retry_number - 1, 62)
    base = min(base, float(policy.max_delay_ms))
    if policy.jitter > 0 and base > 0:
        spread = base * policy.jitter
        base += (rng or random).uniform(-spread, spread)
    return max(0, min(int(base), policy.max_delay_ms))


def has_retries_left(policy: RetryPolicy, attempt: int) -> bool:
    """True when attempt number ``attempt`` (1-based) may be followed by another."""
    return attempt <= policy.max_retries
