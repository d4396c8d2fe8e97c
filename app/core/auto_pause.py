"""When a failing endpoint should pause its subscription: the trip rule, kept per worker.

Each instance judges what its own worker saw (the pause it decides is then shared
through the registry, so every instance stops). Both of the policy's conditions must
hold: enough failures in a row *and* failing for long enough.
"""

from __future__ import annotations

from app.core.models import AutoPausePolicy, LastError


class FailureStreak:
    """Consecutive failures and when the streak began."""

    def __init__(self) -> None:
        """A fresh streak: nothing failed yet."""
        self.count = 0
        self.since_ms: int | None = None
        self.last_error: LastError | None = None

    def success(self) -> None:
        """A 2xx ends the streak."""
        self.count = 0
        self.since_ms = None
        self.last_error = None

    def failure(self, at_ms: int, error: LastError) -> None:
        """One more failed attempt."""
        self.count += 1
        if self.since_ms is None:
            self.since_ms = at_ms
        self.last_error = error

    def tripped(self, policy: AutoPausePolicy | None, now_ms: int) -> str | None:
        """The pause reason when ``policy`` says the subscription should pause, else None."""
        if policy is None or self.count == 0 or self.since_ms is None:
            return None
        failures, failing_ms = policy.after_consecutive_failures, policy.after_failing_for_ms
        if failures is None and failing_ms is None:
            return None
        if failures is not None and self.count < failures:
            return None
        failing_for = now_ms - self.since_ms
        if failing_ms is not None and failing_for < failing_ms:
            return None
        return f"{self.count} consecutive failures over {failing_for} ms"
