"""Adaptive concurrency (``max_in_flight: "auto"``): an AIMD window per subscription.

Start low; every ``window`` fast successes widen it by one (additive increase, about one
step per round of attempts); a timeout, connection error, 5xx or 429 halves it
(multiplicative decrease), as Pub/Sub push does. Only one halving per congestion episode:
attempts that started before the last cut cannot cut again, so a batch of failures that
were all on the wire together halves the window once, not once each.
"""

from __future__ import annotations

from app.core.outcome import SendResult

START_WINDOW = 4
"""Where an adaptive window starts (capped by its ceiling)."""

DEFAULT_CEILING = 100
"""The ceiling of an adaptive window when none is given."""


def congested(result: SendResult) -> bool:
    """The receiver is struggling: no answer in time, no connection, 5xx or 429."""
    return result.status is None or result.status == 429 or result.status >= 500


class AimdWindow:
    """How many attempts one subscription may have on the wire now, in this process."""

    def __init__(self, ceiling: int, start: int = START_WINDOW) -> None:
        """A window of ``min(start, ceiling)``, never below 1 nor above ``ceiling``."""
        self.ceiling = max(1, ceiling)
        self.window = max(1, min(start, self.ceiling))
        self._successes = 0
        self._tickets = 0
        self._cut_after = 0

    def ticket(self) -> int:
        """Number an attempt as it starts (orders attempts against the last cut)."""
        self._tickets += 1
        return self._tickets

    def set_ceiling(self, ceiling: int) -> None:
        """A changed subscription: the window stays, clipped to the new ceiling."""
        self.ceiling = max(1, ceiling)
        self.window = min(self.window, self.ceiling)

    def record(self, ticket: int, result: SendResult, fast_ms: float) -> bool:
        """Adapt to one attempt's result; True when the window changed.

        A success faster than ``fast_ms`` counts toward growth; a slow success or a
        non-congestion failure (a 4xx) changes nothing.
        """
        if congested(result):
            if ticket <= self._cut_after:
                return False
            self._cut_after = self._tickets
            self._successes = 0
            before, self.window = self.window, max(1, self.window // 2)
            return before != self.window
        if not result.ok or result.duration_ms > fast_ms:
            return False
        self._successes += 1
        if self._successes < self.window or self.window >= self.ceiling:
            return False
        self._successes = 0
        self.window += 1
        return True
