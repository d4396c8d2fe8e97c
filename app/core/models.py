"""The plain data that flows through hookline: messages, subscriptions, deliveries, DLQ entries.

These are frozen dataclasses so the core and every adapter share one vocabulary without
depending on the HTTP layer's pydantic models. Each has a ``to_dict``/``from_dict`` pair
because durable adapters store them as JSON.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal

JSON = Any
"""Any JSON value (dict, list, str, int, float, bool or None)."""

BackoffKind = Literal["exponential", "fixed"]
PayloadKind = Literal["envelope", "data"]
Ordering = Literal["none", "key"]


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds, the unit every stored timestamp uses."""
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how far apart a failed delivery is retried.

    ``max_retries`` counts retries after the first attempt, so a message is tried at
    most ``max_retries + 1`` times, in every adapter.
    """

    max_retries: int = 3
    retry_delay_ms: int = 1000
    backoff: BackoffKind = "exponential"
    max_delay_ms: int = 300_000
    jitter: float = 0.2

    def to_dict(self) -> dict[str, Any]:
        """Serialise for storage and API replies."""
        return {
            "max_retries": self.max_retries,
            "retry_delay_ms": self.retry_delay_ms,
            "backoff": self.backoff,
            "max_delay_ms": self.max_delay_ms,
            "jitter": self.jitter,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RetryPolicy:
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            max_retries=int(raw["max_retries"]),
            retry_delay_ms=int(raw["retry_delay_ms"]),
            backoff=raw["backoff"],
            max_delay_ms=int(raw["max_delay_ms"]),
            jitter=float(raw["jitter"]),
        )


@dataclass(frozen=True, slots=True)
class AutoPausePolicy:
    """When a failing endpoint pauses its subscription by itself (its messages then park).

    Both conditions must hold: ``after_consecutive_failures`` failed attempts in a row
    *and* failing for at least ``after_failing_for_ms``; a ``None`` condition is not
    required (both ``None``: never).
    """

    after_consecutive_failures: int | None = 100
    after_failing_for_ms: int | None = 600_000

    def to_dict(self) -> dict[str, Any]:
        """Serialise for storage and API replies."""
        return {
            "after_consecutive_failures": self.after_consecutive_failures,
            "after_failing_for_ms": self.after_failing_for_ms,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> AutoPausePolicy | None:
        """Rebuild from :meth:`to_dict` output (``None`` stays disabled)."""
        if raw is None:
            return None
        return cls(
            after_consecutive_failures=_optional_int(raw.get("after_consecutive_failures")),
            after_failing_for_ms=_optional_int(raw.get("after_failing_for_ms")),
        )


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``per_second`` attempts a second on average, ``burst`` at once (a token bucket).

    Retries count like first attempts: the cap protects the receiver, whatever the cause.
    """

    per_second: float
    burst: int = 1

    def to_dict(self) -> dict[str, Any]:
        """Serialise for storage and API replies."""
        return {"per_second": self.per_second, "burst": self.burst}

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> RateLimit | None:
        """Rebuild from :meth:`to_dict` output (``None``: no limit)."""
        if raw is None:
            return None
        return cls(per_second=float(raw["per_second"]), burst=int(raw.get("burst", 1)))


@dataclass(frozen=True, slots=True)
class Subscription:
    """A callback URL registered on a topic: the HTTP form of the engine's queue trigger.

    ``previous_secret`` is the secret a rotation replaced: deliveries are signed with it
    too until ``previous_secret_expires_at`` (epoch ms), so receivers can switch secrets
    at their own pace.
    """

    id: str
    topic: str
    url: str
    condition: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    dead_letter_topic: str | None = None
    timeout_ms: int = 10_000
    max_in_flight: int = 10
    headers: dict[str, str] = field(default_factory=dict)
    secret: str | None = None
    payload: PayloadKind = "envelope"
    paused: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: int = field(default_factory=now_ms)
    updated_at: int = field(default_factory=now_ms)
    previous_secret: str | None = None
    previous_secret_expires_at: int | None = None
    auto_pause: AutoPausePolicy | None = field(default_factory=AutoPausePolicy)
    paused_reason: str | None = None
    """Why the subscription was paused (``manual``, or the automatic pause's reason)."""
    rate_limit: RateLimit | None = None
    """Caps attempts per second (retries included); ``None``: as fast as ``max_in_flight``."""
    adaptive_concurrency: bool = False
    """``max_in_flight: "auto"``: an AIMD window decides, ``max_in_flight`` is its ceiling."""
    ordering: Ordering = "none"
    """``key``: messages of one ``ordering_key`` are delivered one at a time, in order."""

    @property
    def ordered(self) -> bool:
        """True when messages sharing an ``ordering_key`` are delivered in publish order."""
        return self.ordering == "key"

    def with_changes(self, **changes: Any) -> Subscription:
        """A copy with some fields replaced and ``updated_at`` bumped.

        A previous secret whose grace period is over is dropped on the way: stored
        secrets are only those that still sign.
        """
        changed = replace(self, updated_at=now_ms(), **changes)
        if changed.previous_secret is not None and changed.previous_secret_expiry() is None:
            changed = replace(changed, previous_secret=None, previous_secret_expires_at=None)
        return changed

    def previous_secret_expiry(self, at_ms: int | None = None) -> int | None:
        """When the previous secret stops signing, or ``None`` when none signs at ``at_ms``."""
        expires = self.previous_secret_expires_at
        if self.previous_secret is None or expires is None:
            return None
        return expires if expires > (now_ms() if at_ms is None else at_ms) else None

    def signing_secrets(self, at_ms: int | None = None) -> list[str]:
        """The secrets a delivery at ``at_ms`` is signed with: current first, then the
        previous one during its grace period. None when the subscription is unsigned.
        """
        if not self.secret:
            return []
        if self.previous_secret and self.previous_secret_expiry(at_ms) is not None:
            return [self.secret, self.previous_secret]
        return [self.secret]

    def to_dict(self) -> dict[str, Any]:
        """Serialise for storage (secret included: only the API masks it)."""
        return {
            "id": self.id,
            "topic": self.topic,
            "url": self.url,
            "condition": self.condition,
            "retry": self.retry.to_dict(),
            "dead_letter_topic": self.dead_letter_topic,
            "timeout_ms": self.timeout_ms,
            "max_in_flight": self.max_in_flight,
            "headers": dict(self.headers),
            "secret": self.secret,
            "payload": self.payload,
            "paused": self.paused,
            "metadata": self.metadata,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "previous_secret": self.previous_secret,
            "previous_secret_expires_at": self.previous_secret_expires_at,
            "auto_pause": self.auto_pause.to_dict() if self.auto_pause else None,
            "paused_reason": self.paused_reason,
            "rate_limit": self.rate_limit.to_dict() if self.rate_limit else None,
            "adaptive_concurrency": self.adaptive_concurrency,
            "ordering": self.ordering,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Subscription:
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            id=raw["id"],
            topic=raw["topic"],
            url=raw["url"],
            condition=raw.get("condition"),
            retry=RetryPolicy.from_dict(raw["retry"]),
            dead_letter_topic=raw.get("dead_letter_topic"),
            timeout_ms=int(raw.get("timeout_ms", 10_000)),
            max_in_flight=int(raw.get("max_in_flight", 10)),
            headers=dict(raw.get("headers") or {}),
            secret=raw.get("secret"),
            payload=raw.get("payload", "envelope"),
            paused=bool(raw.get("paused", False)),
            metadata=dict(raw.get("metadata") or {}),
            created_at=int(raw.get("created_at", 0)),
            updated_at=int(raw.get("updated_at", 0)),
            previous_secret=raw.get("previous_secret"),
            previous_secret_expires_at=_optional_int(raw.get("previous_secret_expires_at")),
            auto_pause=(
                AutoPausePolicy.from_dict(raw["auto_pause"])
                if "auto_pause" in raw
                else AutoPausePolicy()
            ),
            paused_reason=raw.get("paused_reason"),
            rate_limit=RateLimit.from_dict(raw.get("rate_limit")),
            adaptive_concurrency=bool(raw.get("adaptive_concurrency", False)),
            ordering="key" if raw.get("ordering") == "key" else "none",
        )


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(slots=True)
class Envelope:
    """One published message, exactly as stored and (in ``envelope`` mode) delivered.

    ``dead_letter`` is set only on the copy published to a ``dead_letter_topic``.
    ``expires_at`` (epoch ms) is the message's deadline: no attempt starts after it.
    Optional, so messages stored before deadlines existed still load.

    Treated as immutable like the other models, but not declared frozen: one is built per
    message published, and a frozen dataclass of ten fields costs about five times as
    much to build (~2 µs against ~0.4 µs, measured on the batch publish path).
    """

    id: str
    topic: str
    data: JSON
    published_at: int
    headers: dict[str, str] = field(default_factory=dict)
    traceparent: str | None = None
    baggage: str | None = None
    dead_letter: dict[str, Any] | None = None
    expires_at: int | None = None
    ordering_key: str | None = None
    """Messages of one key are delivered in publish order to ``ordering: key`` subscriptions."""

    def to_dict(self) -> dict[str, Any]:
        """Serialise for storage; optional fields are left out when empty."""
        out: dict[str, Any] = {
            "id": self.id,
            "topic": self.topic,
            "data": self.data,
            "published_at": self.published_at,
        }
        if self.headers:
            out["headers"] = self.headers
        if self.traceparent:
            out["traceparent"] = self.traceparent
        if self.baggage:
            out["baggage"] = self.baggage
        if self.dead_letter is not None:
            out["dead_letter"] = self.dead_letter
        if self.expires_at is not None:
            out["expires_at"] = self.expires_at
        if self.ordering_key is not None:
            out["ordering_key"] = self.ordering_key
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Envelope:
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            id=raw["id"],
            topic=raw["topic"],
            data=raw.get("data"),
            published_at=int(raw["published_at"]),
            headers=dict(raw.get("headers") or {}),
            traceparent=raw.get("traceparent"),
            baggage=raw.get("baggage"),
            dead_letter=raw.get("dead_letter"),
            expires_at=_optional_int(raw.get("expires_at")),
            ordering_key=raw.get("ordering_key"),
        )


@dataclass(slots=True)
class Delivery:
    """A message leased to one subscription for one attempt.

    ``attempt`` is 1 for the first try. ``receipt`` is the adapter's own handle (a stream
    entry id, a channel delivery tag, ...); the core never looks inside it.
    """

    subscription_id: str
    message: Envelope
    attempt: int
    receipt: Any = None


@dataclass(frozen=True, slots=True)
class LastError:
    """Why the last attempt failed, as kept in a DLQ entry."""

    reason: str
    status: int | None = None
    body_excerpt: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Serialise, leaving out what is unknown."""
        out: dict[str, Any] = {"reason": self.reason}
        if self.status is not None:
            out["status"] = self.status
        if self.body_excerpt:
            out["body_excerpt"] = self.body_excerpt
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> LastError:
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            reason=raw["reason"], status=raw.get("status"), body_excerpt=raw.get("body_excerpt")
        )


@dataclass(frozen=True, slots=True)
class DlqEntry:
    """A message that one subscription gave up on; it remembers which one, for redrive."""

    id: str
    topic: str
    subscription_id: str
    message: Envelope
    attempts: int
    last_error: LastError
    failed_at: int

    def to_dict(self) -> dict[str, Any]:
        """Serialise for storage."""
        return {
            "id": self.id,
            "topic": self.topic,
            "subscription_id": self.subscription_id,
            "message": self.message.to_dict(),
            "attempts": self.attempts,
            "last_error": self.last_error.to_dict(),
            "failed_at": self.failed_at,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DlqEntry:
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            id=raw["id"],
            topic=raw["topic"],
            subscription_id=raw["subscription_id"],
            message=Envelope.from_dict(raw["message"]),
            attempts=int(raw["attempts"]),
            last_error=LastError.from_dict(raw["last_error"]),
            failed_at=int(raw["failed_at"]),
        )


@dataclass(frozen=True, slots=True)
class SubscriptionStats:
    """What one subscription holds right now."""

    subscription_id: str
    backlog: int = 0
    in_flight: int = 0
    scheduled: int = 0
    dlq: int = 0


@dataclass(frozen=True, slots=True)
class TopicStats:
    """What one topic holds right now, per subscription (plus DLQ entries of deleted ones)."""

    topic: str
    subscriptions: list[SubscriptionStats] = field(default_factory=list)
    dlq: int = 0
