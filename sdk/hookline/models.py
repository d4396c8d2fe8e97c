"""Typed results: what hookline answers, as frozen dataclasses.

Each result keeps the JSON it was read from in ``raw``, so a field a newer server adds is
reachable before the SDK names it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class PublishResult:
    """One accepted message: its id, and ``duplicate`` when an idempotency key matched."""

    id: str
    topic: str
    duplicate: bool

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> PublishResult:
        """Read ``{id, topic, duplicate}``."""
        return cls(id=str(raw["id"]), topic=str(raw["topic"]), duplicate=bool(raw["duplicate"]))


@dataclass(frozen=True, slots=True)
class BatchItemResult:
    """One message of a batch, in request order."""

    id: str
    duplicate: bool


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The retry policy a subscription has in force."""

    max_retries: int
    retry_delay_ms: int
    backoff: str
    max_delay_ms: int
    jitter: float

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> RetryPolicy:
        """Read ``retry`` of a subscription."""
        return cls(
            max_retries=int(raw["max_retries"]),
            retry_delay_ms=int(raw["retry_delay_ms"]),
            backoff=str(raw["backoff"]),
            max_delay_ms=int(raw["max_delay_ms"]),
            jitter=float(raw["jitter"]),
        )


@dataclass(frozen=True, slots=True)
class Subscription:
    """A subscription (the HTTP form of a queue trigger).

    ``secret`` is in clear only in the answer to a create or a rotation; masked elsewhere.
    """

    id: str
    topic: str
    url: str
    condition: str | None
    retry: RetryPolicy
    dead_letter_topic: str | None
    timeout_ms: int
    max_in_flight: int | str
    headers: dict[str, str]
    secret: str | None
    payload: str
    paused: bool
    metadata: dict[str, Any]
    created_at: int
    updated_at: int
    previous_secret_expires_at: int | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Subscription:
        """Read a subscription; unknown fields stay in ``raw``."""
        return cls(
            id=str(raw["id"]),
            topic=str(raw["topic"]),
            url=str(raw["url"]),
            condition=_str_or_none(raw.get("condition")),
            retry=RetryPolicy.from_json(raw["retry"]),
            dead_letter_topic=_str_or_none(raw.get("dead_letter_topic")),
            timeout_ms=int(raw["timeout_ms"]),
            max_in_flight=raw["max_in_flight"],
            headers=dict(raw.get("headers") or {}),
            secret=_str_or_none(raw.get("secret")),
            payload=str(raw.get("payload", "envelope")),
            paused=bool(raw.get("paused", False)),
            metadata=dict(raw.get("metadata") or {}),
            created_at=int(raw.get("created_at", 0)),
            updated_at=int(raw.get("updated_at", 0)),
            previous_secret_expires_at=_int_or_none(raw.get("previous_secret_expires_at")),
            raw=raw,
        )


@dataclass(frozen=True, slots=True)
class LastError:
    """Why the last attempt of a dead-lettered message failed."""

    reason: str
    status: int | None
    body_excerpt: str | None


@dataclass(frozen=True, slots=True)
class DlqEntry:
    """A dead-lettered message, with the subscription that failed it."""

    id: str
    message_id: str
    subscription_id: str
    topic: str
    data: Any
    attempts: int
    last_error: LastError
    failed_at: int
    published_at: int | None
    traceparent: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> DlqEntry:
        """Read one DLQ entry."""
        error = raw.get("last_error") or {}
        return cls(
            id=str(raw["id"]),
            message_id=str(raw["message_id"]),
            subscription_id=str(raw["subscription_id"]),
            topic=str(raw.get("topic", "")),
            data=raw.get("data"),
            attempts=int(raw["attempts"]),
            last_error=LastError(
                reason=str(error.get("reason", "")),
                status=_int_or_none(error.get("status")),
                body_excerpt=_str_or_none(error.get("body_excerpt")),
            ),
            failed_at=int(raw["failed_at"]),
            published_at=_int_or_none(raw.get("published_at")),
            traceparent=_str_or_none(raw.get("traceparent")),
            raw=raw,
        )


@dataclass(frozen=True, slots=True)
class DlqPage:
    """A page of DLQ entries; pass ``next_cursor`` back as ``cursor`` (``None``: last page)."""

    entries: list[DlqEntry]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One delivery attempt of a message to one subscription."""

    attempt: int
    started_at: int | None
    duration_ms: int | None
    status: int | None
    reason: str | None
    response_excerpt: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Attempt:
        """Read one attempt."""
        return cls(
            attempt=int(raw.get("attempt", 0)),
            started_at=_int_or_none(raw.get("started_at")),
            duration_ms=_int_or_none(raw.get("duration_ms")),
            status=_int_or_none(raw.get("status")),
            reason=_str_or_none(raw.get("reason")),
            response_excerpt=_str_or_none(raw.get("response_excerpt")),
            raw=raw,
        )


@dataclass(frozen=True, slots=True)
class MessageDelivery:
    """Where one message stands with one subscription that matched it.

    ``state``: pending, scheduled (``next_attempt_at`` set), in_flight, delivered, filtered,
    dead_lettered or parked.
    """

    subscription_id: str
    state: str
    next_attempt_at: int | None
    attempts: list[Attempt]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, raw: dict[str, Any], subscription_id: str | None = None) -> MessageDelivery:
        """Read one subscription's view of a message."""
        sub = subscription_id or raw.get("subscription_id") or raw.get("id") or ""
        return cls(
            subscription_id=str(sub),
            state=str(raw.get("state", "")),
            next_attempt_at=_int_or_none(raw.get("next_attempt_at")),
            attempts=[Attempt.from_json(a) for a in raw.get("attempts") or []],
            raw=raw,
        )


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """A published message and, per subscription that matched it, its state and attempts."""

    id: str
    topic: str
    data: Any
    headers: dict[str, str]
    published_at: int | None
    traceparent: str | None
    deliveries: list[MessageDelivery]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> MessageInfo:
        """Read ``GET /v1/messages/{id}``; the message may be nested under ``message``."""
        nested = raw.get("message")
        message: dict[str, Any] = nested if isinstance(nested, dict) else raw
        subs = raw.get("subscriptions") or raw.get("deliveries") or []
        if isinstance(subs, dict):
            deliveries = [MessageDelivery.from_json(v, str(k)) for k, v in subs.items()]
        else:
            deliveries = [MessageDelivery.from_json(v) for v in subs if isinstance(v, dict)]
        return cls(
            id=str(message.get("id", raw.get("id", ""))),
            topic=str(message.get("topic", "")),
            data=message.get("data"),
            headers=dict(message.get("headers") or {}),
            published_at=_int_or_none(message.get("published_at")),
            traceparent=_str_or_none(message.get("traceparent")),
            deliveries=deliveries,
            raw=raw,
        )


@dataclass(frozen=True, slots=True)
class Message:
    """One message of a batch publish; ``idempotency_key`` is made up when absent."""

    data: Any
    delay_ms: int | None = None
    headers: dict[str, str] | None = None
    idempotency_key: str | None = None
    extra: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The batch item to send (unset fields left out)."""
        item: dict[str, Any] = {"data": self.data}
        for name in ("delay_ms", "headers", "idempotency_key"):
            value = getattr(self, name)
            if value is not None:
                item[name] = value
        return {**item, **(self.extra or {})}
