"""Rate limits: a token bucket per subscription, shared through the backend when it can.

The bucket *reserves*: every call takes a token, possibly going into debt, and answers how
long the caller must wait before its attempt may start. Waiters therefore queue in call
order and the bucket is asked once per attempt, never polled.

An adapter that can share a bucket across instances (Redis) implements
:class:`RateLimiter`; otherwise each hookline process keeps its own
(:class:`LocalRateLimiter`), so N processes on such a backend allow up to N x the rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable


@runtime_checkable
class RateLimiter(Protocol):
    """An optional adapter role: one token bucket per subscription, for every instance."""

    async def acquire(self, subscription_id: str, topic: str, per_second: float, burst: int) -> int:
        """Take one token; the milliseconds to wait before the attempt may start (0: now).

        Never refuses: a caller that is told to wait has already paid, so waiting that
        long and then attempting keeps the rate, whatever other callers do meanwhile.
        """


class TokenBucket:
    """``per_second`` tokens a second, at most ``burst`` saved up; reservations may go into debt."""

    def __init__(
        self, per_second: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """A full bucket: ``burst`` attempts may start at once."""
        self.per_second = per_second
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def reserve(self) -> float:
        """Take a token; the seconds to wait before using it."""
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.per_second)
        self._stamp = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.per_second


class LocalRateLimiter:
    """:class:`RateLimiter` within one process: for backends that cannot share a bucket."""

    def __init__(self) -> None:
        """No buckets yet: each subscription gets one on its first attempt."""
        self._buckets: dict[str, TokenBucket] = {}

    async def acquire(
        self,
        subscription_id: str,
        topic: str,  # noqa: ARG002 - part of the role; one process needs no topic scoping
        per_second: float,
        burst: int,
    ) -> int:
        """Take a token from this process's bucket (a changed limit starts a fresh one)."""
        bucket = self._buckets.get(subscription_id)
        if bucket is None or (bucket.per_second, bucket.burst) != (per_second, burst):
            bucket = self._buckets[subscription_id] = TokenBucket(per_second, burst)
        return int(bucket.reserve() * 1000)
