"""A replicated log on a RabbitMQ stream: the shared memory of hookline instances.

Every instance appends events to the same stream and follows it from the first offset,
applying each event to a local state machine in stream order. Since all instances see
the same events in the same order, they compute the same state and the same answers
("this id is taken", "this key was claimed first by ..."), with no server besides the
broker. An append returns the result of applying that very event, once this instance's
follower has reached it: read-your-writes, and a total order for conflicting writes.

The subscription registry and the idempotency keys are both built on this.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import Any

import aiormq
import aiormq.abc
from aio_pika.abc import AbstractChannel

from app.adapters.kit import codec
from app.adapters.rabbitmq.codec import properties
from app.adapters.rabbitmq.connection import BROKER_ERRORS, Outbound, Session
from app.adapters.rabbitmq.topology import declare_stream
from app.core.errors import BackendUnavailableError

logger = logging.getLogger("hookline.rabbitmq")

Apply = Callable[[dict[str, Any], bool], Any]
"""``apply(event, live)``: change the state, return the event's result. ``live`` is False
while replaying history at start, True for events that happen while we follow."""

SYNC = "sync"
"""Event type that changes nothing: appending one and waiting for it catches up."""


class StreamLog:
    """Append to and follow one stream."""

    def __init__(
        self,
        name: str,
        apply: Apply,
        arguments: dict[str, Any] | None = None,
        prefetch: int = 1000,
    ) -> None:
        """``apply`` is called once per event, in stream order, never concurrently."""
        self.name = name
        self._apply = apply
        self._arguments = arguments or {}
        self._prefetch = prefetch
        self._next_offset: int | None = None
        self.offset: int | None = None
        """The stream offset of the event being applied (during ``apply`` only): where to
        read it back (the insight store keeps it instead of the event's messages)."""
        self._waiters: dict[str, asyncio.Future[Any]] = {}
        self._catch_up_ids: set[str] = set()
        self._caught_up = asyncio.Event()
        self._channel: AbstractChannel | None = None

    @property
    def caught_up(self) -> bool:
        """True once the history that existed at start has been applied."""
        return self._caught_up.is_set()

    async def attach(self, session: Session) -> None:
        """Declare the stream and follow it from where this instance left off."""
        await declare_stream(await session.admin_channel(), self.name, self._arguments)
        channel = await session.consume_conn.channel(publisher_confirms=False)
        underlay = await channel.get_underlay_channel()
        await underlay.basic_qos(prefetch_count=self._prefetch)
        offset: int | str = "first" if self._next_offset is None else self._next_offset
        await underlay.basic_consume(
            self.name, self._on_message, arguments={"x-stream-offset": offset}
        )
        self._channel = channel

    def detach(self) -> None:
        """Forget the dead channel after a connection loss (the follower resumes later)."""
        self._channel = None

    async def append(self, session: Session, event: dict[str, Any]) -> Any:
        """Append ``event`` and return what applying it gave, once this instance applied it."""
        event_id = uuid.uuid4().hex
        body = codec.encode({**event, "eid": event_id})
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters[event_id] = waiter
        try:
            try:
                await session.publish(Outbound("", self.name, body, properties()))
            except aiormq.exceptions.PublishError as exc:
                raise BackendUnavailableError(f"RabbitMQ stream {self.name} is missing") from exc
            try:
                async with asyncio.timeout(session.publish_timeout_s):
                    return await asyncio.shield(waiter)
            except TimeoutError as exc:
                raise BackendUnavailableError(
                    f"RabbitMQ stream {self.name}: appended event not seen back in time"
                ) from exc
        finally:
            self._waiters.pop(event_id, None)

    async def catch_up(self, session: Session) -> None:
        """Append a no-op and wait for it: everything appended before is then applied."""
        event_id = uuid.uuid4().hex
        self._catch_up_ids.add(event_id)
        try:
            await self.append(session, {"op": SYNC, "cid": event_id})
        finally:
            self._catch_up_ids.discard(event_id)

    async def _on_message(self, message: aiormq.abc.DeliveredMessage) -> None:
        # Callbacks start in delivery order and this part never awaits: stream order holds.
        headers = message.header.properties.headers or {}
        offset = headers.get("x-stream-offset")
        duplicate = (
            isinstance(offset, int) and self._next_offset is not None and offset < self._next_offset
        )
        if not duplicate:
            self.offset = offset if isinstance(offset, int) else None
            self._handle(message.body)
            if isinstance(offset, int):
                self._next_offset = offset + 1
        tag = message.delivery_tag
        if tag is not None:
            with contextlib.suppress(*BROKER_ERRORS):
                await message.channel.basic_ack(tag, wait=False)

    def _handle(self, body: bytes) -> None:
        try:
            event = codec.decode(body)
        except ValueError:
            logger.warning("ignoring an undecodable event in stream %s", self.name)
            return
        if not isinstance(event, dict):
            return
        try:
            result = self._apply(event, self._caught_up.is_set())
        except Exception:
            logger.exception("failed to apply an event of stream %s", self.name)
            result = None
        waiter = self._waiters.get(str(event.get("eid")))
        if waiter is not None and not waiter.done():
            waiter.set_result(result)
        if event.get("op") == SYNC and event.get("cid") in self._catch_up_ids:
            self._caught_up.set()
