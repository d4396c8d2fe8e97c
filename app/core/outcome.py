"""Turning what a receiver answered into what happens next: delivered, retry, or dead."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.core.models import LastError, RetryPolicy
from app.core.retry import has_retries_left, retry_delay_ms


@dataclass(slots=True)
class SendResult:
    """What one HTTP attempt produced. ``status`` is None when no response came.

    Not frozen: one is made per attempt, and a frozen dataclass's ``__init__`` costs twice
    as much (nothing changes one after it is made).
    """

    status: int | None
    reason: str
    body_excerpt: str | None = None
    retry_after_ms: int | None = None
    duration_ms: float = 0.0

    @property
    def ok(self) -> bool:
        """2xx: the receiver took it."""
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class Delivered:
    """The receiver answered 2xx (``status``, for the attempt log)."""

    status: int | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class RetryLater:
    """Try again after ``delay_ms``."""

    delay_ms: int
    error: LastError


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Give up: to the DLQ (and the dead-letter topic, if any)."""

    error: LastError


Outcome = Delivered | RetryLater | DeadLetter

GONE = 410
BLOCKED = "blocked_destination"
RETRY_AFTER_STATUSES = frozenset({429, 503})


def classify(result: SendResult, attempt: int, policy: RetryPolicy) -> Outcome:
    """Decide the next step for attempt number ``attempt`` (1-based).

    2xx is delivered; 410 and a destination the SSRF guard refuses are dead at once;
    anything else (other statuses, 3xx since
    redirects are not followed, timeouts, connection errors) retries while retries are
    left. 429/503 with ``Retry-After`` wait that long, capped by ``max_delay_ms``.
    """
    if result.ok:
        return Delivered(result.status)
    error = LastError(reason=result.reason, status=result.status, body_excerpt=result.body_excerpt)
    if result.status == GONE or result.reason == BLOCKED:
        return DeadLetter(error)
    if not has_retries_left(policy, attempt):
        return DeadLetter(error)
    if result.status in RETRY_AFTER_STATUSES and result.retry_after_ms is not None:
        return RetryLater(min(result.retry_after_ms, policy.max_delay_ms), error)
    return RetryLater(retry_delay_ms(policy, attempt), error)
