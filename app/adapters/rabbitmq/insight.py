"""Delivery insight on RabbitMQ: a stream every instance follows into a bounded memory store.

Why a stream: RabbitMQ has no store one can query, and the adapter already keeps its
shared state (registry, idempotency keys) on streams every instance replays
(:mod:`.streamlog`). The recorder appends one event per flush (a whole batch of facts,
so one confirmed publish per few milliseconds however busy the dispatcher is); every
instance applies every batch, in stream order, to a :class:`MemoryInsightStore`, so each
answers ``GET /v1/messages/{id}`` from memory with what every instance attempted. A batch
this instance appended is applied from the objects it already holds (at its place in the
stream), not rebuilt from its JSON.

A message's envelope is not kept in memory: the stream holds it already, in the event
that announced it, so an instance keeps only that event's offset
(:class:`~app.adapters.rabbitmq.insight_index.PublishedIndex`, ~46 bytes per message) and a
lookup reads that one event back. An event carries its messages as one JSON text
(``env``) beside their ids (``ids``), so following the stream parses ids, attempts and
marks, never the messages' data. (Events of earlier versions, with the messages under
``b.msgs``, are still read; instances of earlier versions do not see the messages of
these events, only their attempts and marks.) Issue 12's backlog: 100,000 held messages
cost an instance ~125 MB of insight before, a few MB now.

Bounds: the stream keeps ``retention_ms`` of history (``x-max-age``, in 8 MB segments)
and at most ``max_stream_bytes``; the memory store forgets by the same retention and
caps messages and attempts (see :mod:`app.adapters.kit.insight_memory`). An instance
that starts replays the retained history. A message's envelope can be read back as long as
the stream holds its event (``retention_ms`` after it was published, sooner past
``max_stream_bytes``); its attempts and marks as long as the memory store keeps them.
Cost per delivered message: its envelope once in the stream, about 400 bytes of attempt
and mark in the stream, and in each instance's memory ~46 bytes of index plus ~200 bytes
of attempt (the mark is implied by it) and bookkeeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

import aiormq.abc

from app.adapters.kit import codec
from app.adapters.kit.insight_memory import MemoryInsightStore
from app.adapters.rabbitmq.connection import BROKER_ERRORS, BrokerConnection, Session
from app.adapters.rabbitmq.insight_index import PublishedIndex
from app.adapters.rabbitmq.streamlog import StreamLog
from app.core.codec import decode_json, encode_json
from app.core.errors import BackendUnavailableError
from app.core.insight import (
    AttemptOutcome,
    AttemptPage,
    AttemptRecord,
    InsightBatch,
    InsightSettings,
    MessageInsight,
)
from app.core.models import Envelope, now_ms

logger = logging.getLogger("hookline.rabbitmq")

MAX_STREAM_BYTES = 2 * 1024**3
EVENT_MESSAGES = 100
"""Messages per stream event at most: a publish of 1,000 messages made one 1 MB event, whose
copies (encoded, framed, received, decoded) left the heap tens of MB larger for good
(issue 12's backlog RSS); events of ~100 KB reuse the same memory one after the other."""
READ_BACK_TIMEOUT_S = 5.0
"""How long a lookup waits for the one event it reads back from the stream."""


class StreamInsightStore:
    """Implementation of :class:`app.core.ports.InsightStore` on a RabbitMQ stream."""

    def __init__(self, connection: BrokerConnection, name: str, settings: InsightSettings) -> None:
        """Follows the stream ``name`` once :meth:`open` is called."""
        self._conn = connection
        self._memory = MemoryInsightStore(settings)
        self._published = PublishedIndex(settings.retention_ms, settings.max_messages)
        self._retention_ms = settings.retention_ms
        self._attached = False
        self._opened = False
        self._own: dict[str, InsightBatch] = {}
        """Batches this instance appended and has not applied yet, by batch id: applied as
        they are (at their place in the stream) instead of rebuilt from their JSON.
        """
        self.log = StreamLog(
            name,
            self._apply,
            arguments={
                "x-max-age": f"{max(1, settings.retention_ms // 1000)}s",
                "x-stream-max-segment-size-bytes": 8_000_000,
                "x-max-length-bytes": MAX_STREAM_BYTES,
            },
        )

    async def open(self) -> None:
        """Start following now if connected (else at the next connection)."""
        self._opened = True
        session = self._conn.current
        if session is not None:
            with contextlib.suppress(BackendUnavailableError):
                await self.attach(session)

    async def attach(self, session: Session) -> None:
        """Follow the stream on a (new) connection, once opened."""
        if self._opened and not self._attached:
            self._attached = True
            try:
                await self.log.attach(session)
            except BaseException:
                self._attached = False
                raise

    def detach(self) -> None:
        """The connection died: follow again at the next one."""
        self._attached = False
        self.log.detach()

    async def close(self) -> None:
        """The adapter closes the connection (and with it the follower)."""
        self._opened = False

    def _apply(self, event: dict[str, Any], live: bool) -> Any:  # noqa: ARG002 - Apply signature
        if event.get("op") == "batch":
            own = self._own.pop(str(event.get("bid")), None)
            batch = own if own is not None else InsightBatch.from_dict(event["b"])
            at = int(event["at"])
            ids = event.get("ids")
            if not isinstance(ids, list):  # an event of an earlier version
                ids = [envelope.id for envelope in batch.messages]
            if ids and self.log.offset is not None:
                self._published.add(at, self.log.offset, ids)
            self._memory.apply(InsightBatch([], batch.marks, batch.attempts), at)
        return None

    async def write(self, batch: InsightBatch) -> None:
        """Append the batch (its messages ``EVENT_MESSAGES`` per event, its attempts and
        marks with the last), one event after the other; returns once this instance
        applied them.

        One after the other: at most one event's copies (encoded, framed, received,
        decoded: ~0.9 MB for 100 messages) in memory at a time, where appending them all at
        once left the heap ~10 MB larger after a burst; ~1 ms each, so still tens of
        thousands of messages a second.
        """
        session = await self._conn.session()
        messages = batch.messages
        parts = [
            InsightBatch(messages[start : start + EVENT_MESSAGES])
            for start in range(0, len(messages) - EVENT_MESSAGES, EVENT_MESSAGES)
        ]
        parts.append(
            InsightBatch(messages[len(parts) * EVENT_MESSAGES :], batch.marks, batch.attempts)
        )
        for part in parts:
            await self._append(session, part)

    async def _append(self, session: Session, part: InsightBatch) -> None:
        batch_id = uuid.uuid4().hex
        self._own[batch_id] = part
        try:
            await self.log.append(session, _event(batch_id, part))
        finally:
            self._own.pop(batch_id, None)

    async def _caught_up(self) -> None:
        """Apply what other instances appended so far (one round trip)."""
        session = self._conn.current
        if session is not None and self._attached:
            with contextlib.suppress(BackendUnavailableError):
                await self.log.catch_up(session)

    async def get_message(self, message_id: str) -> MessageInsight | None:
        """Attempts and marks from memory, after catching up with the stream; the message
        from the event that announced it.
        """
        await self._caught_up()
        found = await self._memory.get_message(message_id)
        self._published.expire(now_ms())
        offset = self._published.find(message_id)
        if offset is None:
            return found
        envelope, published = await self._read_envelope(offset, message_id)
        if found is not None:
            return MessageInsight(envelope, found.marks, found.attempts)
        # Only published: known while its announcement is within retention.
        if envelope is None or published < now_ms() - self._retention_ms:
            return None
        return MessageInsight(envelope)

    async def _read_envelope(self, offset: int, message_id: str) -> tuple[Envelope | None, int]:
        """The message as the batch event at ``offset`` carried it (None when the stream
        no longer holds that event: past ``max_stream_bytes``), and when it was announced.
        """
        session = await self._conn.session()
        body: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()

        async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
            # Once found, never ack again: an ack reaching a channel being closed is a
            # connection error (the adapter's consuming connection, shared).
            if body.done():
                return
            headers = message.header.properties.headers or {}
            at = headers.get("x-stream-offset")
            if isinstance(at, int) and at >= offset:
                body.set_result(message.body if at == offset else None)
            elif message.delivery_tag is not None:  # earlier events of the chunk: next
                with contextlib.suppress(*BROKER_ERRORS):
                    await message.channel.basic_ack(message.delivery_tag, wait=False)

        try:
            channel = await session.consume_conn.channel(publisher_confirms=False)
        except BROKER_ERRORS as exc:
            raise BackendUnavailableError(f"RabbitMQ: cannot read {self.log.name}") from exc
        try:
            underlay = await channel.get_underlay_channel()
            await underlay.basic_qos(prefetch_count=16)
            await underlay.basic_consume(
                self.log.name, on_message, arguments={"x-stream-offset": offset}
            )
            try:
                raw = await asyncio.wait_for(body, READ_BACK_TIMEOUT_S)
            except TimeoutError:
                raw = None
        except BROKER_ERRORS as exc:
            raise BackendUnavailableError(f"RabbitMQ: cannot read {self.log.name}") from exc
        finally:
            if not body.done():
                body.set_result(None)
            with contextlib.suppress(*BROKER_ERRORS):
                await channel.close()
        return _envelope_in(raw, message_id)

    async def list_attempts(
        self,
        topic: str,
        subscription_id: str,
        *,
        outcome: AttemptOutcome | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> AttemptPage:
        """From memory, after catching up with the stream."""
        await self._caught_up()
        return await self._memory.list_attempts(
            topic, subscription_id, outcome=outcome, limit=limit, cursor=cursor
        )

    async def recent_attempts(
        self, topic: str, subscription_id: str, limit: int
    ) -> list[AttemptRecord]:
        """From memory (health figures need no catch-up)."""
        return await self._memory.recent_attempts(topic, subscription_id, limit)


def _event(batch_id: str, batch: InsightBatch) -> dict[str, Any]:
    """A batch as a stream event: the messages as one JSON text, beside their ids."""
    event: dict[str, Any] = {
        "op": "batch",
        "at": now_ms(),
        "bid": batch_id,
        "b": InsightBatch([], batch.marks, batch.attempts).to_dict(),
    }
    if batch.messages:
        event["ids"] = [envelope.id for envelope in batch.messages]
        event["env"] = encode_json([envelope.to_dict() for envelope in batch.messages]).decode()
    return event


def _envelope_in(raw: bytes | None, message_id: str) -> tuple[Envelope | None, int]:
    """The message ``message_id`` of a batch event's body, if it is there, and the event's
    time (0 when unknown).
    """
    if raw is None:
        return None, 0
    try:
        event = codec.decode(raw)
        at = int(event.get("at", 0))
        text = event.get("env")
        messages = decode_json(text) if isinstance(text, str) else event["b"]["msgs"]
        for message in messages:
            if message.get("id") == message_id:
                return Envelope.from_dict(message), at
    except (*codec.DECODE_ERRORS, AttributeError):
        logger.warning("undecodable insight event read back for %s", message_id)
    return None, 0
