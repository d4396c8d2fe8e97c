"""Where a message is accepted: ids, idempotency, trace context, then the adapter.

A publish returns only once the adapter holds every new message, so a 202 is never a lie.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from app.core.ids import new_message_id
from app.core.models import JSON, Envelope, now_ms
from app.core.ports import OutgoingMessage, PublishPort
from app.core.tracing import annotate_publish, publish_span


@dataclass(frozen=True, slots=True)
class PublishRequest:
    """One message as a client asked for it (already validated by the API)."""

    data: JSON
    delay_ms: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    idempotency_key: str | None = None
    dead_letter: dict[str, object] | None = None
    expires_at: int | None = None
    """The deadline (epoch ms), already checked by the API (:mod:`app.core.deadlines`)."""
    ordering_key: str | None = None
    """Orders this message after earlier ones of the same key (``ordering: key``)."""


@dataclass(frozen=True, slots=True)
class PublishResult:
    """The id given to a message; ``duplicate`` when an idempotency key matched."""

    id: str
    duplicate: bool


class PublishCounter(Protocol):
    """Where the publisher counts what it accepted (the metrics)."""

    def published_messages(self, topic: str, new: int, duplicates: int) -> None:
        """Count one publish call's new messages and idempotent repeats."""


class Publisher:
    """Accepts messages for a topic, hands them to the adapter and counts them."""

    def __init__(
        self,
        adapter: PublishPort,
        idempotency_ttl_ms: int = 86_400_000,
        counter: PublishCounter | None = None,
    ) -> None:
        """``idempotency_ttl_ms`` is the dedup window of ``Idempotency-Key``."""
        self._adapter = adapter
        self._idempotency_ttl_ms = idempotency_ttl_ms
        self.on_published: Callable[[Envelope], None] | None = None
        """Told of every stored message (the insight recorder keeps it for lookup)."""
        self._counter = counter

    async def publish(
        self,
        topic: str,
        requests: Sequence[PublishRequest],
        trace_carrier: Mapping[str, str] | None = None,
    ) -> list[PublishResult]:
        """Publish a batch to ``topic``: all new messages are stored together or none are.

        A repeated idempotency key (within the window, also inside one batch) gets the
        first message's id back with ``duplicate=True`` and stores nothing.
        """
        results: list[PublishResult] = []
        outgoing: list[OutgoingMessage] = []
        claimed: list[str] = []
        with publish_span(topic, trace_carrier or {}) as context:
            traceparent = context.get("traceparent")
            baggage = context.get("baggage")
            published_at = now_ms()
            try:
                for request in requests:
                    message_id = new_message_id()
                    if request.idempotency_key is not None:
                        earlier = await self._adapter.claim_idempotency_key(
                            topic, request.idempotency_key, message_id, self._idempotency_ttl_ms
                        )
                        if earlier is not None:
                            results.append(PublishResult(earlier, duplicate=True))
                            continue
                        claimed.append(request.idempotency_key)
                    envelope = Envelope(
                        id=message_id,
                        topic=topic,
                        data=request.data,
                        published_at=published_at,
                        headers=request.headers,
                        traceparent=traceparent,
                        baggage=baggage,
                        dead_letter=request.dead_letter,
                        expires_at=request.expires_at,
                        ordering_key=request.ordering_key,
                    )
                    deliver_at = published_at + request.delay_ms if request.delay_ms else None
                    outgoing.append(OutgoingMessage(envelope, deliver_at))
                    results.append(PublishResult(message_id, duplicate=False))
                if outgoing:
                    await self._adapter.publish(outgoing)
                    if self.on_published is not None:
                        for message in outgoing:
                            self.on_published(message.envelope)
                annotate_publish([r.id for r in results])
            except BaseException:
                for key in claimed:
                    try:
                        await self._adapter.release_idempotency_key(topic, key)
                    except Exception:  # noqa: BLE001, S112 - best effort; the key expires anyway
                        continue
                raise
        if self._counter is not None:
            duplicates = sum(r.duplicate for r in results)
            self._counter.published_messages(topic, len(results) - duplicates, duplicates)
        return results
