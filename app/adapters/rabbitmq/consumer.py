"""Turning RabbitMQ's push into ``receive``'s pull: one consumer per subscription.

The broker pushes up to ``prefetch`` (= the subscription's ``max_in_flight``) unacked
messages into a local buffer; ``receive`` takes from it. A message stays unacked, and
so invisible to other instances, from delivery until the outcome is recorded; if this
process dies the broker hands it to another consumer. Delivery tags only mean something
on the channel that received them, so a receipt remembers its consumer and becomes void
when that consumer's channel is gone (the broker has requeued the message by then).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import aiormq.abc
from aio_pika.abc import AbstractChannel
from aiormq.abc import ChannelFrame
from pamqp.commands import Basic
from pamqp.header import ContentHeader

from app.adapters.rabbitmq import frames
from app.adapters.rabbitmq.connection import BROKER_ERRORS, Session

ACK_LINGER_S = 0.002
"""Longest wait before delivered messages are acked (batched), unless a quarter of the
prefetch is waiting already."""


_FAST_DELIVER = all(
    hasattr(aiormq.Channel, name) for name in ("_on_deliver_frame", "_get_frame", "_read_content")
)
"""aiormq has the channel internals :func:`_deliver_without_tasks` replaces (7.x)."""


def _deliver_without_tasks(
    channel: aiormq.abc.AbstractChannel, deliver: Callable[[aiormq.abc.DeliveredMessage], None]
) -> None:
    """Hand this channel's deliveries to ``deliver`` directly.

    aiormq starts a task per delivered message to run the consumer callback (a coroutine);
    ours only appends to a buffer, so on a consumer's own channel the delivery is read
    as aiormq reads it (method, header, body frames) and handed over in place. Any other
    aiormq version keeps its own path.
    """
    if not _FAST_DELIVER or not isinstance(channel, aiormq.Channel):
        return
    get_frame = channel._get_frame
    read_content = channel._read_content

    async def on_deliver_frame(frame: Basic.Deliver) -> None:
        header = await get_frame()
        if not isinstance(header, ContentHeader):
            raise TypeError(f"unexpected frame {header!r} instead of a content header")
        message = await read_content(frame, header)
        if frame.consumer_tag in channel.consumers:
            deliver(message)

    channel._on_deliver_frame = on_deliver_frame  # type: ignore[method-assign]


@dataclass(frozen=True, slots=True)
class Receipt:
    """The adapter's handle on one leased message (``Delivery.receipt``)."""

    consumer: SubscriptionConsumer
    delivery_tag: int


class SubscriptionConsumer:
    """A consumer on one subscription queue, feeding a local buffer."""

    def __init__(
        self,
        subscription_id: str,
        queue: str,
        prefetch: int,
        generation: int,
        exclusive: bool = False,
    ) -> None:
        """Not consuming until :meth:`start`. ``exclusive``: the queue's only consumer
        (an ordered subscription's owner); starting fails while another instance is.
        """
        self.subscription_id = subscription_id
        self.exclusive = exclusive
        self.queue = queue
        self.prefetch = prefetch
        self.generation = generation
        self.last_used = time.monotonic()
        self.leased: set[int] = set()
        self.waiting = 0
        """Receive loops parked on this consumer right now."""
        self._buffer: deque[aiormq.abc.DeliveredMessage] = deque()
        self._wakeup = asyncio.Event()
        self._channel: AbstractChannel | None = None
        self._underlay: aiormq.abc.AbstractChannel | None = None
        self._tag: str | None = None
        self._cancelled = False
        self._paused = False
        self._done: list[int] = []
        self._linger: asyncio.TimerHandle | None = None
        self._closer: asyncio.Task[None] | None = None
        self._outbox: list[bytes] = []
        self._mover: asyncio.Task[None] | None = None
        self.writes = 0
        """Payloads of acks and nacks handed to the connection (tests and figures)."""

    @property
    def open(self) -> bool:
        """True while the channel is open: leased messages can still be settled."""
        channel = self._channel
        return channel is not None and not channel.is_closed

    @property
    def consuming(self) -> bool:
        """True while new messages may arrive (not paused, not cancelled by the broker)."""
        return self.open and not self._cancelled and not self._paused

    @property
    def buffered(self) -> int:
        """Messages pushed to us but not yet handed out by ``receive``."""
        return len(self._buffer)

    async def start(self, session: Session) -> None:
        """Open a channel, set the prefetch and start consuming."""
        channel = await session.consumer_channel()
        self._channel = channel
        underlay = await channel.get_underlay_channel()
        self._underlay = underlay
        underlay.on_consumer_cancel_callbacks.add(self._on_cancel)
        _deliver_without_tasks(underlay, self._buffered)
        await underlay.basic_qos(prefetch_count=self.prefetch)
        ok = await underlay.basic_consume(self.queue, self._on_message, exclusive=self.exclusive)
        self._tag = ok.consumer_tag

    async def _on_message(self, message: aiormq.abc.DeliveredMessage) -> None:
        self._buffered(message)

    def _buffered(self, message: aiormq.abc.DeliveredMessage) -> None:
        self._buffer.append(message)
        self._wakeup.set()

    def _on_cancel(self, frame: Basic.Cancel) -> None:
        if frame.consumer_tag == self._tag:
            self._cancelled = True
            self._wakeup.set()

    async def take(self, max_count: int, wait_s: float) -> list[aiormq.abc.DeliveredMessage]:
        """Up to ``max_count`` buffered messages, waiting at most ``wait_s`` for the first."""
        self.last_used = time.monotonic()
        # Cleared before looking: a message pushed from now on sets it again, so a
        # wait_for_work after an empty take cannot sleep through it.
        self._wakeup.clear()
        if not self._buffer and wait_s > 0:
            await self.wait(wait_s)
        if not self.open:  # the broker has requeued whatever is buffered
            return []
        taken: list[aiormq.abc.DeliveredMessage] = []
        while self._buffer and len(taken) < max_count:
            message = self._buffer.popleft()
            tag = message.delivery_tag
            if message.channel is not self._underlay or tag is None:
                continue
            self.leased.add(tag)
            taken.append(message)
        return taken

    async def wait(self, timeout_s: float) -> None:
        """Until a message is pushed (or the consumer stops), at most ``timeout_s``.

        A consumer being waited on is in use: housekeeping does not retire it.
        """
        if self._buffer or self._wakeup.is_set() or not self.consuming:
            return
        self.waiting += 1
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self._wakeup.wait()
        finally:
            self.waiting -= 1
            self.last_used = time.monotonic()

    def owns(self, receipt: object) -> bool:
        """True if the receipt can still be settled on this consumer's live channel."""
        return (
            isinstance(receipt, Receipt)
            and receipt.consumer is self
            and self.open
            and receipt.delivery_tag in self.leased
        )

    async def settle(self, delivery_tag: int, requeue: bool | None) -> None:
        """Ack (``requeue`` None) or nack one leased message now; no-op on a dead channel."""
        self.leased.discard(delivery_tag)
        underlay = self._underlay
        if underlay is not None and self.open:
            number = underlay.number
            if requeue is None:
                self._emit([frames.ack(number, delivery_tag)])
            else:
                self._emit([frames.nack(number, delivery_tag, requeue)])
        await self._stop_if_drained()

    async def ack_many(self, delivery_tags: list[int]) -> None:
        """Ack delivered messages, batched: they are sent within ``ACK_LINGER_S``.

        Batching lets one ``multiple`` ack cover many messages (see :meth:`_flush`), which
        saves frames, syscalls and broker work on every delivery. A crash inside the
        linger redelivers those messages, as a lost ack would: at-least-once either way.
        """
        tags = [t for t in delivery_tags if t in self.leased]
        if not tags:
            return
        self.leased.difference_update(tags)
        self._done.extend(tags)
        if len(self._done) >= max(1, self.prefetch // 4):
            self._flush()
        elif self._linger is None:
            self._linger = asyncio.get_running_loop().call_later(ACK_LINGER_S, self._lingered)
        await self._stop_if_drained()

    def _lingered(self) -> None:
        self._linger = None
        self._flush()
        if self._drained() and self._closer is None:
            self._closer = asyncio.create_task(self._stop_if_drained())

    def _flush(self) -> None:
        """Send the batched acks with as few frames as possible.

        Every tag below the smallest tag still leased goes in one ``multiple`` ack: tags
        are handed out in increasing order and the buffer only holds larger ones, so such
        an ack covers exactly settled messages. Frames leave in the order they were made
        (:meth:`_emit`), so a nack sent earlier is never overtaken by an ack covering it.
        """
        linger, self._linger = self._linger, None
        if linger is not None:
            linger.cancel()
        done, self._done = sorted(self._done), []
        underlay = self._underlay
        if not done or underlay is None or not self.open:
            return
        number = underlay.number
        floor = min(self.leased, default=None)
        below = [t for t in done if floor is None or t < floor]
        out = [frames.ack(number, below[-1], multiple=True)] if below else []
        out += [frames.ack(number, tag) for tag in done[len(below) :]]
        self._emit(out)

    def _emit(self, out: list[bytes]) -> None:
        """Queue frames for the socket after every frame this consumer queued before: one
        payload (one write) for all of them, straight into the connection's frame queue
        (aiormq's ``basic_ack`` cost a coroutine, a queue entry and a write per frame).
        """
        underlay = self._underlay
        if underlay is None or not self.open:
            return
        self._outbox += out
        if self._mover is not None:
            return  # the queue was full: the mover hands these over in order
        payload = b"".join(self._outbox)
        try:
            underlay.connection.write_queue.put_nowait(
                ChannelFrame(payload=payload, should_close=False)
            )
        except asyncio.QueueFull:
            self._mover = asyncio.create_task(self._move(underlay))
            return
        self._outbox.clear()
        self.writes += 1

    async def _move(self, underlay: aiormq.abc.AbstractChannel) -> None:
        """Hand queued frames over as the connection's frame queue empties, in order."""
        try:
            while self._outbox and self.open:
                payload, self._outbox = b"".join(self._outbox), []
                frame = ChannelFrame(payload=payload, should_close=False)
                await underlay.connection.write_queue.put(frame)
                self.writes += 1
        finally:
            self._mover = None

    def _drained(self) -> bool:
        return not self.consuming and not self.leased and not self._done and bool(self._channel)

    async def _stop_if_drained(self) -> None:
        if self._drained():
            await self.stop()

    async def pause(self) -> None:
        """Stop receiving; unleased messages go back now, leased ones when settled."""
        if self._paused:
            return
        self._paused = True
        self._wakeup.set()
        underlay, tag = self._underlay, self._tag
        buffered = [m.delivery_tag for m in self._buffer if m.delivery_tag is not None]
        self._buffer.clear()
        if underlay is not None and self.open:
            if tag is not None and not self._cancelled:
                with contextlib.suppress(*BROKER_ERRORS):
                    await underlay.basic_cancel(tag)
            number = underlay.number
            self._emit([frames.nack(number, t, requeue=True) for t in buffered])
        await self._stop_if_drained()

    async def stop(self) -> None:
        """Send pending acks, then close the channel: the rest goes back to the queue."""
        self._paused = True
        self._wakeup.set()
        self._flush()
        mover = self._mover
        if mover is not None:  # the last acks first, then the close
            with contextlib.suppress(*BROKER_ERRORS, asyncio.CancelledError):
                await mover
        channel, self._channel = self._channel, None
        self._buffer.clear()
        self.leased.clear()
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(*BROKER_ERRORS, asyncio.CancelledError):
                await channel.close()
