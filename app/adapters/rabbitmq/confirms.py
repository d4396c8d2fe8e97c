"""Publishing with confirms, pipelined: one write per loop turn, one wait per batch.

aiormq's ``basic_publish`` costs a lock, a timeout, a uuid, two futures and a frame queue
entry per message, and its frame queue holds ten entries: a batch of a hundred went out
ten at a time, each with its own socket write. Here every publish of one event-loop turn
(the messages of a batch, and the single publishes of all HTTP requests that arrived
together) is encoded at once (:mod:`.frames`), numbered, and queued as *one* payload, so
the writer task sends it with one ``send``; each caller then waits on one future for all
of its messages' confirms.

Confirms still arrive through aiormq's channel: each message's entry in the channel's
``confirmations`` is a :class:`_Slot`, which counts its batch down instead of being a
future of its own; returns (a mandatory message nobody could route) find theirs by
message id as before. Every publish on the confirm channel must go through one
:class:`ConfirmPublisher`: delivery tags are the broker's count of publishes on the
channel, so nothing else may publish there.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aiormq
from aiormq.abc import ChannelFrame
from pamqp.commands import Basic

from app.adapters.rabbitmq.frames import PublishEncoder

_EXPIRY_STEP_S = 0.25
"""How late a timeout may fire: batches expire in sweeps at most this often."""


class Message(Protocol):
    """What is published (:class:`app.adapters.rabbitmq.connection.Outbound`)."""

    @property
    def exchange(self) -> str:
        """Where to publish."""

    @property
    def routing_key(self) -> str:
        """The routing key (a topic, or a queue's name on the direct exchange)."""

    @property
    def body(self) -> bytes:
        """The message body."""

    @property
    def properties(self) -> Basic.Properties:
        """Its properties (never mutated here)."""

    @property
    def mandatory(self) -> bool:
        """Unroutable means returned (an error) rather than dropped."""


class PublishBatch:
    """The confirms of one caller's messages: one future, resolved by the last of them."""

    __slots__ = ("_remaining", "future", "results")

    def __init__(self, future: asyncio.Future[None], count: int) -> None:
        """``future`` is the channel's (rejected by aiormq if the channel closes)."""
        self.future = future
        self.results: list[BaseException | None] = [None] * count
        self._remaining = count
        if not count:
            future.set_result(None)

    def settle(self, index: int, error: BaseException | None) -> None:
        """One message confirmed (``error`` None), returned or nacked."""
        if error is not None:
            self.results[index] = error
        self._remaining -= 1
        if not self._remaining and not self.future.done():
            self.future.set_result(None)


class _Slot:
    """One message's entry in aiormq's ``channel.confirmations`` (a future's duck type)."""

    __slots__ = ("_batch", "_channel", "_index", "_message_id", "_settled")

    def __init__(
        self, batch: PublishBatch, index: int, channel: aiormq.Channel, message_id: str | None
    ) -> None:
        self._batch = batch
        self._index = index
        self._channel = channel
        self._message_id = message_id
        self._settled = False

    def done(self) -> bool:
        return self._settled or self._batch.future.done()

    def cancelled(self) -> bool:
        # A late confirm of a batch already given up (timeout, closed channel) is expected:
        # aiormq logs it at debug level when we say "cancelled".
        return self._batch.future.done() and not self._settled

    def set_result(self, _frame: object) -> None:
        self._settle(None)

    def set_exception(self, error: BaseException) -> None:
        self._settle(error)

    def _settle(self, error: BaseException | None) -> None:
        if self._settled:
            return
        self._settled = True
        if self._message_id is not None:
            self._channel.message_id_delivery_tag.pop(self._message_id, None)
        self._batch.settle(self._index, error)


@dataclass(slots=True)
class _Queued:
    batch: PublishBatch
    parts: list[bytes]
    message_ids: list[str | None]


class ConfirmPublisher:
    """Publishes on one confirm channel, coalescing the publishes of each loop turn.

    A batch not confirmed within ``timeout_s`` fails with :class:`TimeoutError`. One
    timer serves every batch in flight (deadlines are kept in order): an
    ``asyncio.timeout`` per caller cost a timer-heap entry, its reschedule and its
    cancellation per published message.
    """

    def __init__(self, channel: aiormq.Channel, timeout_s: float) -> None:
        """``channel`` must have publisher confirms on; nothing else may publish on it."""
        self.channel = channel
        self.timeout_s = timeout_s
        self._encoder = PublishEncoder(channel.number, channel.connection.connection_tune.frame_max)
        self._deadlines: deque[tuple[float, list[PublishBatch]]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._queued: list[_Queued] = []
        self._backlog: list[ChannelFrame] = []
        self._mover: asyncio.Task[None] | None = None
        self.writes = 0
        """Payloads queued for the socket (tests and figures: publishes per write)."""

    def publish(self, messages: Sequence[Message]) -> PublishBatch:
        """Queue ``messages`` for this loop turn's write; await ``batch.future`` for the
        confirms (then ``batch.results``: None, or the error of each message).

        Raises :class:`aiormq.exceptions.ChannelInvalidStateError` on a closed channel.
        """
        channel = self.channel
        if channel.is_closed:
            raise aiormq.exceptions.ChannelInvalidStateError(f"{channel} closed")
        batch = PublishBatch(channel.create_future(), len(messages))
        parts: list[bytes] = []
        message_ids: list[str | None] = []
        encode = self._encoder.encode
        for message in messages:
            properties = message.properties
            message_id = None
            if message.mandatory:
                # a return names its message by id only: give each its own
                message_id = uuid.uuid4().hex
                properties = copy.copy(properties)
                properties.message_id = message_id
            message_ids.append(message_id)
            parts += encode(
                message.exchange, message.routing_key, message.mandatory, properties, message.body
            )
        if messages:
            if not self._queued:
                asyncio.get_running_loop().call_soon(self._flush)
            self._queued.append(_Queued(batch, parts, message_ids))
        return batch

    def _flush(self) -> None:
        """Number this turn's publishes in order and queue them as one payload."""
        queued, self._queued = self._queued, []
        channel = self.channel
        if channel.is_closed:
            error = aiormq.exceptions.ChannelInvalidStateError(f"{channel} closed")
            for item in queued:
                if not item.batch.future.done():
                    item.batch.future.set_exception(error)
            return
        confirmations: dict[int, Any] = channel.confirmations
        by_message_id = channel.message_id_delivery_tag
        tag = channel.delivery_tag
        parts: list[bytes] = []
        for item in queued:
            for index, message_id in enumerate(item.message_ids):
                tag += 1
                confirmations[tag] = _Slot(item.batch, index, channel, message_id)
                if message_id is not None:
                    by_message_id[message_id] = tag
            parts += item.parts
        channel.delivery_tag = tag
        self._expire_later([item.batch for item in queued])
        frame = ChannelFrame(payload=b"".join(parts), should_close=False)
        self.writes += 1
        if self._backlog or not self._put(frame):
            self._backlog.append(frame)
            if self._mover is None:
                self._mover = asyncio.create_task(self._move_backlog())

    def _expire_later(self, batches: list[PublishBatch]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        self._deadlines.append((deadline, batches))
        if self._timer is None:
            self._timer = loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        """Fail the batches whose deadline passed; wait for the next deadline."""
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            for batch in deadlines.popleft()[1]:
                if not batch.future.done():
                    batch.future.set_exception(
                        TimeoutError(f"not confirmed within {self.timeout_s:g}s")
                    )
        if deadlines:  # not sooner than a step away: one timer per flush would cost as much
            self._timer = loop.call_at(max(deadlines[0][0], now + _EXPIRY_STEP_S), self._expire)

    def _put(self, frame: ChannelFrame) -> bool:
        try:
            self.channel.write_queue.put_nowait(frame)
        except asyncio.QueueFull:
            return False
        return True

    async def _move_backlog(self) -> None:
        """The connection's frame queue was full: hand payloads over in order as it empties."""
        try:
            while self._backlog:
                await self.channel.write_queue.put(self._backlog[0])
                self._backlog.pop(0)
        finally:
            self._mover = None

    def close(self) -> None:
        """Stop handing payloads over (the channel or its connection is gone); callers
        still waiting have their futures rejected by aiormq as the channel closes.
        """
        mover, self._mover = self._mover, None
        self._backlog.clear()
        if mover is not None:
            mover.cancel()
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        self._deadlines.clear()
