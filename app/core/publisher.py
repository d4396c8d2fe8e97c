"""Where a message is accepted: ids, idempotency, trace context, then the adapter.

A publish returns only once the adapter holds every new message, so a 202 is never a lie.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from app.core.ids import new_message_ids
from app.core.models import JSON, Envelope, now_ms
from app.core.ports import OutgoingMessage, PublishPort
from app.core.tracing import annotate_publish, caller_context, publish_span, tracing_enabled


class PublishEntry(Protocol):
    """What the publisher reads of one message to publish (:class:`PublishRequest`, or the
    API's decoded batch entries as they are, so a batch is not copied once more).
    """

    @property
    def data(self) -> JSON:
        """The payload, any JSON value."""

    @property
    def delay_ms(self) -> int:
        """Deliver no earlier than this many ms from now (0: at once)."""

    @property
    def headers(self) -> dict[str, str] | None:
        """Message attributes (``None``: none)."""

    @property
    def idempotency_key(self) -> str | None:
        """A repeat within the dedup window gets the first id back and stores nothing."""

    @property
    def dead_letter(self) -> dict[str, object] | None:
        """Set only on a copy published to a ``dead_letter_topic``."""

    @property
    def expires_at(self) -> int | None:
        """The deadline (epoch ms), already checked by the API."""

    @property
    def ordering_key(self) -> str | None:
        """Orders this message after earlier ones of the same key."""


@dataclass(slots=True)
class PublishRequest:
    """One message as a client asked for it (already validated by the API).

    Not frozen: a frozen dataclass costs several times as much to build, once per message
    on the publish path. Nothing changes one after it is made.
    """

    data: JSON
    delay_ms: int = 0
    headers: dict[str, str] | None = field(default_factory=dict)
    idempotency_key: str | None = None
    dead_letter: dict[str, object] | None = None
    expires_at: int | None = None
    """The deadline (epoch ms), already checked by the API (:mod:`app.core.deadlines`)."""
    ordering_key: str | None = None
    """Orders this message after earlier ones of the same key (``ordering: key``)."""


@dataclass(slots=True)
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
        self.on_published: Callable[[list[Envelope]], None] | None = None
        """Told of the messages each publish stored (the insight recorder keeps them)."""
        self._counter = counter

    async def publish(
        self,
        topic: str,
        requests: Sequence[PublishEntry],
        trace_carrier: Mapping[str, str] | None = None,
    ) -> list[PublishResult]:
        """Publish a batch to ``topic``: all new messages are stored together or none are.

        A repeated idempotency key (within the window, also inside one batch) gets the
        first message's id back with ``duplicate=True`` and stores nothing.
        """
        if tracing_enabled():
            with publish_span(topic, trace_carrier or {}) as context:
                results = await self._store(topic, requests, context)
                annotate_publish([r.id for r in results])
        else:
            # The span's work without a span: nothing would record it.
            results = await self._store(topic, requests, caller_context(trace_carrier or {}))
        if self._counter is not None:
            duplicates = sum(r.duplicate for r in results) if self._claims(requests) else 0
            self._counter.published_messages(topic, len(results) - duplicates, duplicates)
        return results

    @staticmethod
    def _claims(requests: Sequence[PublishEntry]) -> bool:
        return any(r.idempotency_key is not None for r in requests)

    async def _store(
        self, topic: str, requests: Sequence[PublishEntry], context: Mapping[str, str]
    ) -> list[PublishResult]:
        """Ids, envelopes, the adapter: the part of a publish that is per message."""
        traceparent = context.get("traceparent")
        baggage = context.get("baggage")
        published_at = now_ms()
        ids = new_message_ids(len(requests))
        if self._claims(requests):
            return await self._store_claimed(
                topic, requests, ids, published_at, traceparent, baggage
            )
        envelopes = [
            Envelope(
                message_id,
                topic,
                r.data,
                published_at,
                r.headers or {},
                traceparent,
                baggage,
                r.dead_letter,
                r.expires_at,
                r.ordering_key,
            )
            for message_id, r in zip(ids, requests, strict=True)
        ]
        await self._adapter.publish(
            [
                OutgoingMessage(envelope, published_at + r.delay_ms if r.delay_ms else None)
                for envelope, r in zip(envelopes, requests, strict=True)
            ]
        )
        if self.on_published is not None and envelopes:
            self.on_published(envelopes)
        return [PublishResult(message_id, False) for message_id in ids]

    async def _store_claimed(
        self,
        topic: str,
        requests: Sequence[PublishEntry],
        ids: list[str],
        published_at: int,
        traceparent: str | None,
        baggage: str | None,
    ) -> list[PublishResult]:
        """:meth:`_store` for a batch holding idempotency keys: each key is claimed first,
        and every claim is released again when the batch is not stored.
        """
        results: list[PublishResult] = []
        outgoing: list[OutgoingMessage] = []
        claimed: list[str] = []
        try:
            for message_id, request in zip(ids, requests, strict=True):
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
                    headers=request.headers or {},
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
                    self.on_published([message.envelope for message in outgoing])
        except BaseException:
            for key in claimed:
                try:
                    await self._adapter.release_idempotency_key(topic, key)
                except Exception:  # noqa: BLE001, S112 - best effort; the key expires anyway
                    continue
            raise
        return results
