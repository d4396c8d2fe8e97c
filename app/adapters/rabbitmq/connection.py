# Over 350 lines on purpose: connection, sessions, reconnection: one lifecycle.
"""Staying connected: two AMQP connections, rebuilt in the background after any loss.

Publishing and consuming use separate connections, as RabbitMQ recommends: when the
broker blocks publishers (memory or disk alarm) consumers must keep acknowledging, or
nothing would ever drain. A :class:`Session` is one live pair; after a broker restart a
new session (a new ``generation``) replaces it, and everything bound to the old one
(consumers, delivery tags) is known to be void.

We do not use aio-pika's robust connection: it replays every queue it ever declared,
which would resurrect the queue of a subscription another instance deleted meanwhile.
Instead the adapter re-declares what the shared registry says exists (``on_connected``).

Each subscription consumer has its own channel (its prefetch is its ``max_in_flight``).
A connection carries at most :data:`CHANNELS_PER_CONNECTION` of them (RabbitMQ's default
``channel_max`` is 2047), so ten thousand subscriptions use ten consume connections, not
one that refuses the 2048th channel; the pool is capped at :data:`MAX_CONSUME_CONNECTIONS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import aio_pika
import aiormq
import aiormq.abc
from aio_pika.abc import AbstractChannel, AbstractConnection
from pamqp.commands import Basic
from pamqp.common import FieldTable

from app.adapters.rabbitmq.confirms import ConfirmPublisher
from app.adapters.rabbitmq.settings import RabbitMQSettings
from app.core.errors import BackendUnavailableError

logger = logging.getLogger("hookline.rabbitmq")

BROKER_ERRORS: tuple[type[BaseException], ...] = (
    aiormq.exceptions.AMQPError,
    ConnectionError,
    OSError,  # includes TimeoutError
    RuntimeError,  # aiormq's ChannelInvalidStateError
)
"""What a call to the broker raises when the broker or the connection is gone."""

UNAVAILABLE: tuple[type[BaseException], ...] = (*BROKER_ERRORS, BackendUnavailableError)
"""Broker errors, raw or already translated for the API."""

CHANNELS_PER_CONNECTION = 1000
"""Consumer channels opened on one consume connection before another is opened."""

MAX_CONSUME_CONNECTIONS = 32
"""Consume connections per process at most (32,000 subscription consumers)."""

Connect = Callable[[], Awaitable[AbstractConnection]]


def unavailable(what: str, exc: BaseException) -> BackendUnavailableError:
    """The error the API turns into a 503, with the cause in one line."""
    reason = str(exc) or type(exc).__name__
    return BackendUnavailableError(f"RabbitMQ {what} failed: {reason}")


@dataclass(frozen=True, slots=True)
class Outbound:
    """One message to publish with a confirm."""

    exchange: str
    routing_key: str
    body: bytes
    properties: Basic.Properties
    mandatory: bool = True


class Session:
    """One live pair of connections and the channels the adapter shares on them."""

    def __init__(
        self,
        generation: int,
        publish_conn: AbstractConnection,
        consume_conn: AbstractConnection,
        publish_timeout_s: float,
        connect: Connect | None = None,
    ) -> None:
        """Wrap two open connections; channels are opened lazily and reopened when closed.

        ``connect`` opens further consume connections when consumers fill the first.
        """
        self.generation = generation
        self.publish_conn = publish_conn
        self.consume_conn = consume_conn
        self.publish_timeout_s = publish_timeout_s
        self._connect_more = connect
        self._consume_pool: list[_PooledConnection] = [_PooledConnection(consume_conn)]
        self._pool_lock = asyncio.Lock()
        self._confirm: AbstractChannel | None = None
        self._publisher: ConfirmPublisher | None = None
        self._admin: AbstractChannel | None = None
        self._lock = asyncio.Lock()
        self.lost = asyncio.Event()
        # A plain aio-pika connection closed by the broker is not ``is_closed`` (that only
        # follows close()); its close callbacks do run, so they are what we watch.
        publish_conn.close_callbacks.add(self._mark_lost)
        consume_conn.close_callbacks.add(self._mark_lost)

    def _mark_lost(self, _sender: object, _exc: BaseException | None = None) -> None:
        self.lost.set()

    @property
    def alive(self) -> bool:
        """True while every connection is open."""
        return not self.lost.is_set() and not (
            _closed(self.publish_conn) or any(_closed(p.conn) for p in self._consume_pool)
        )

    @property
    def consume_connections(self) -> int:
        """Consume connections open now (tests and figures)."""
        return len(self._consume_pool)

    async def consumer_channel(self) -> AbstractChannel:
        """A new channel for one subscription consumer, on a consume connection with room.

        The channel counts against its connection until it closes.
        """
        async with self._pool_lock:
            pooled = next(
                (p for p in self._consume_pool if p.channels < CHANNELS_PER_CONNECTION), None
            )
            if pooled is None:
                if self._connect_more is not None and (
                    len(self._consume_pool) < MAX_CONSUME_CONNECTIONS
                ):
                    conn = await self._connect_more()
                    conn.close_callbacks.add(self._mark_lost)
                    pooled = _PooledConnection(conn)
                    self._consume_pool.append(pooled)
                else:  # at the cap: the broker's channel_max is the last word
                    pooled = min(self._consume_pool, key=lambda p: p.channels)
            pooled.channels += 1
        try:
            channel = await pooled.conn.channel(publisher_confirms=False)
        except BaseException:
            pooled.channels -= 1
            raise
        channel.close_callbacks.add(pooled.channel_closed)
        return channel

    async def confirm_channel(self) -> aiormq.abc.AbstractChannel:
        """The shared publisher-confirms channel (unroutable mandatory messages raise)."""
        channel = self._confirm
        if channel is None or channel.is_closed:
            async with self._lock:
                channel = self._confirm
                if channel is None or channel.is_closed:
                    channel = await self.publish_conn.channel(
                        publisher_confirms=True, on_return_raises=True
                    )
                    self._confirm = channel
        return await channel.get_underlay_channel()

    async def admin_channel(self) -> aiormq.abc.AbstractChannel:
        """A shared channel for declarations that cannot fail on a missing entity."""
        channel = self._admin
        if channel is None or channel.is_closed:
            async with self._lock:
                channel = self._admin
                if channel is None or channel.is_closed:
                    channel = await self.publish_conn.channel(publisher_confirms=False)
                    self._admin = channel
        return await channel.get_underlay_channel()

    @contextlib.asynccontextmanager
    async def scratch_channel(
        self, consume: bool = False
    ) -> AsyncIterator[aiormq.abc.AbstractChannel]:
        """A private channel for one operation that may close it (passive declare, lock)."""
        conn = self.consume_conn if consume else self.publish_conn
        channel = await conn.channel(publisher_confirms=False)
        try:
            yield await channel.get_underlay_channel()
        finally:
            if not channel.is_closed:
                with contextlib.suppress(*BROKER_ERRORS, asyncio.CancelledError):
                    await channel.close()

    async def publish(self, message: Outbound) -> None:
        """Publish one message and wait for the broker's confirm.

        Raises :class:`aiormq.exceptions.PublishError` when a mandatory message was
        unroutable and :class:`BackendUnavailableError` for anything else.
        """
        [error] = await self.publish_each([message])
        if error is not None:
            raise error

    async def publisher(self) -> ConfirmPublisher:
        """The publisher of the confirm channel (a new one when the channel was reopened)."""
        publisher = self._publisher
        if publisher is not None and not publisher.channel.is_closed:
            return publisher
        channel = await self.confirm_channel()
        publisher = self._publisher
        if publisher is None or publisher.channel is not channel:
            if not isinstance(channel, aiormq.Channel):
                raise TypeError(f"expected an aiormq channel, got {type(channel).__name__}")
            if publisher is not None:
                publisher.close()
            publisher = self._publisher = ConfirmPublisher(channel, self.publish_timeout_s)
        return publisher

    async def publish_each(self, messages: Sequence[Outbound]) -> list[BaseException | None]:
        """Publish together, confirms pipelined (:mod:`.confirms`); one result per message.

        A result is None (confirmed), a :class:`aiormq.exceptions.PublishError`
        (unroutable) or a :class:`BackendUnavailableError` (also when not confirmed
        within ``publish_timeout_ms``).
        """
        if not messages:
            return []
        try:
            batch = (await self.publisher()).publish(messages)
            await batch.future
        except BROKER_ERRORS as exc:  # incl. TimeoutError, and the channel closing meanwhile
            error = unavailable("publish", exc)
            return [error for _ in messages]
        return [_outcome(result) for result in batch.results]

    async def close(self) -> None:
        """Close both connections (unacked deliveries go back to their queues)."""
        self.lost.set()
        if self._publisher is not None:
            self._publisher.close()
        for conn in [*(p.conn for p in self._consume_pool), self.publish_conn]:
            with contextlib.suppress(*BROKER_ERRORS, asyncio.CancelledError):
                await conn.close()


def _closed(conn: AbstractConnection) -> bool:
    """True once the connection is closed or closing, even before its close callbacks ran.

    aio-pika marks a connection the broker closed only after its callbacks (which set
    ``Session.lost``) ran, a few loop turns later; a publish on it fails at once, and in
    between nothing may be handed out from it.
    """
    transport = conn.transport
    return conn.is_closed or transport is None or transport.connection.is_closed


def _outcome(result: BaseException | None) -> BaseException | None:
    """One publish's result as :meth:`Session.publish_each` reports it."""
    if result is None or isinstance(result, aiormq.exceptions.PublishError):
        return result
    if isinstance(result, aiormq.exceptions.DeliveryError):
        return BackendUnavailableError("RabbitMQ refused the message (nack)")
    if isinstance(result, BROKER_ERRORS):
        return unavailable("publish", result)
    raise result


class _PooledConnection:
    """A consume connection and how many consumer channels it carries."""

    def __init__(self, conn: AbstractConnection) -> None:
        self.conn = conn
        self.channels = 0

    def channel_closed(self, _sender: object, _exc: BaseException | None = None) -> None:
        self.channels -= 1


OnConnected = Callable[[Session], Awaitable[None]]
OnLost = Callable[[Session], None]


class BrokerConnection:
    """Keeps a :class:`Session` alive, reconnecting with capped exponential backoff."""

    def __init__(
        self, config: RabbitMQSettings, on_connected: OnConnected, on_lost: OnLost
    ) -> None:
        """``on_connected`` runs on every new session before it is handed out."""
        self._config = config
        self._on_connected = on_connected
        self._on_lost = on_lost
        self._session: Session | None = None
        self._up = asyncio.Event()
        self._attempted = asyncio.Event()
        self._down_reason: str | None = None
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._generation = 0

    @property
    def current(self) -> Session | None:
        """The live session, if any."""
        session = self._session
        return session if session is not None and session.alive else None

    def start(self) -> None:
        """Start connecting in the background; never raises."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="hookline-rabbitmq-connection")

    async def first_attempt(self, timeout_s: float) -> None:
        """Wait (bounded) until the first connection attempt succeeded or failed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._attempted.wait()

    async def session(self, wait_s: float | None = None) -> Session:
        """The live session; waits for one only while a first attempt is still under way.

        During a known outage it raises :class:`BackendUnavailableError` at once, so an
        HTTP publish answers 503 quickly instead of hanging.
        """
        session = self.current
        if session is not None:
            return session
        if self._closing.is_set():
            raise BackendUnavailableError("RabbitMQ adapter is closed")
        if self._down_reason is None:
            try:
                async with asyncio.timeout(
                    self._config.connect_timeout_ms / 1000 if wait_s is None else wait_s
                ):
                    await self._up.wait()
            except TimeoutError:
                pass
            session = self.current
            if session is not None:
                return session
        reason = self._down_reason or "not connected yet"
        raise BackendUnavailableError(
            f"RabbitMQ at {self._config.safe_url} is unavailable ({reason})"
        )

    async def close(self) -> None:
        """Stop reconnecting and close the live session."""
        self._closing.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        session, self._session = self._session, None
        self._up.clear()
        if session is not None:
            self._on_lost(session)
            await session.close()

    async def _open(self) -> AbstractConnection:
        timeout = self._config.connect_timeout_ms / 1000
        name: FieldTable = {"connection_name": "hookline"}
        return await aio_pika.connect(
            self._config.amqp_url, timeout=timeout, client_properties=name
        )

    async def _connect(self) -> Session:
        publish_conn = await self._open()
        try:
            consume_conn = await self._open()
        except BaseException:
            with contextlib.suppress(*BROKER_ERRORS):
                await publish_conn.close()
            raise
        self._generation += 1
        return Session(
            self._generation,
            publish_conn,
            consume_conn,
            self._config.publish_timeout_s,
            self._open,
        )

    async def _run(self) -> None:
        delay = 0.2
        while not self._closing.is_set():
            session: Session | None = None
            try:
                session = await self._connect()
                await self._on_connected(session)
            except Exception as exc:  # the reconnect loop must outlive any failure
                if not isinstance(exc, UNAVAILABLE):
                    logger.exception("unexpected error while connecting to RabbitMQ")
                if session is not None:
                    await session.close()
                self._note_failure(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._config.reconnect_max_ms / 1000)
                continue
            delay = 0.2
            self._session = session
            self._down_reason = None
            self._up.set()
            self._attempted.set()
            logger.info("connected to RabbitMQ at %s", self._config.safe_url)
            await self._wait_lost(session)
            self._up.clear()
            self._session = None
            if self._closing.is_set():
                return
            self._down_reason = "connection lost, reconnecting"
            logger.warning(
                "lost the connection to RabbitMQ at %s; reconnecting in the background "
                "(publishes answer 503 meanwhile)",
                self._config.safe_url,
            )
            self._on_lost(session)
            await session.close()

    def _note_failure(self, exc: BaseException) -> None:
        reason = str(exc) or type(exc).__name__
        first = self._down_reason is None or self._down_reason.startswith("connection lost")
        self._down_reason = reason
        self._attempted.set()
        if first:
            logger.warning(
                "RabbitMQ at %s is unreachable (%s); retrying in the background, "
                "/readyz and publishes answer 503 until it is back",
                self._config.safe_url,
                reason,
            )
        else:
            logger.debug("RabbitMQ still unreachable: %s", reason)

    async def _wait_lost(self, session: Session) -> None:
        waiters = [
            asyncio.ensure_future(session.lost.wait()),
            asyncio.ensure_future(self._closing.wait()),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
