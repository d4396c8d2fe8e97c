"""Waking receive loops when there is work, over one pub/sub connection per process.

Every script that makes work appear (publish, an immediate retry, a release, a promotion
of due copies, a redrive) also PUBLISHes a small notification on ``<prefix>:wake``: the
topic (all its subscriptions) or ``"<topic> <subscription>"`` (one). Each process keeps
one subscriber connection and turns notifications into local :class:`asyncio.Event` s,
so an idle subscription costs no Redis connection, no command and no wake-up.

Pub/sub delivers at most once: a notification sent while the subscriber was
disconnected is lost. So every (re)subscription wakes every local loop, and while the
subscriber is down, waits are capped at :data:`DISCONNECTED_WAIT_S`. On Redis Cluster a
classic PUBLISH reaches every node, so the subscriber may sit on any of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from app.adapters.redis.settings import RedisSettings

logger = logging.getLogger("hookline.redis")

DISCONNECTED_WAIT_S = 5.0
"""Longest wait for work while notifications cannot be received (the subscriber is down)."""

_READ_TIMEOUT_S = 15.0
_HEALTH_CHECK_S = 15
_RECONNECT_MAX_S = 2.0

Nodes = Callable[[], Iterable[tuple[str, int]]]
"""Known cluster nodes (host, port), to subscribe elsewhere when one is gone."""


def wake_channel(prefix: str) -> str:
    """The notification channel of one key prefix (the Lua side builds the same name)."""
    return f"{prefix}:wake"


class Wakeups:
    """Local events per subscription, set by notifications from any instance."""

    def __init__(self, settings: RedisSettings, nodes: Nodes | None = None) -> None:
        """``nodes`` (cluster only) lists nodes to fall back on; no I/O here."""
        self._settings = settings
        self._nodes = nodes
        self.channel = wake_channel(settings.key_prefix)
        self._events: dict[str, asyncio.Event] = {}
        self._by_topic: dict[str, set[str]] = {}
        self._topic_of: dict[str, str] = {}
        self._pending_topics: set[str] = set()
        self._flush_scheduled = False
        self.connected = False
        self.connections = 0
        """How many times the subscriber (re)subscribed: each one woke every loop."""

    # -- local side ----------------------------------------------------------------------

    def event(self, topic: str, subscription_id: str) -> asyncio.Event:
        """The subscription's event (created on first use)."""
        event = self._events.get(subscription_id)
        if event is None:
            event = self._events[subscription_id] = asyncio.Event()
            self._topic_of[subscription_id] = topic
            self._by_topic.setdefault(topic, set()).add(subscription_id)
        return event

    async def wait(self, topic: str, subscription_id: str, timeout_s: float) -> None:
        """Until the subscription is woken or ``timeout_s`` (shorter while disconnected)."""
        event = self.event(topic, subscription_id)
        if event.is_set():
            return
        if not self.connected:
            timeout_s = min(timeout_s, DISCONNECTED_WAIT_S)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await event.wait()

    def retain(self, subscription_ids: set[str]) -> None:
        """Forget the events of subscriptions that no longer exist."""
        for sub_id in [s for s in self._events if s not in subscription_ids]:
            self.forget(sub_id)

    def forget(self, subscription_id: str) -> None:
        """Drop one subscription's event (deleted), waking whoever still waits on it."""
        event = self._events.pop(subscription_id, None)
        if event is None:
            return
        event.set()
        topic = self._topic_of.pop(subscription_id, "")
        members = self._by_topic.get(topic)
        if members is not None:
            members.discard(subscription_id)
            if not members:
                del self._by_topic[topic]

    def wake(self, topic: str, subscription_id: str | None = None) -> None:
        """Set one subscription's event, or (coalesced per loop turn) all of a topic's."""
        if subscription_id is not None:
            event = self._events.get(subscription_id)
            if event is not None:
                event.set()
            return
        self._pending_topics.add(topic)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        topics, self._pending_topics = self._pending_topics, set()
        for topic in topics:
            for sub_id in self._by_topic.get(topic, ()):
                self._events[sub_id].set()

    def wake_all(self) -> None:
        """Set every event (after a reconnect: notifications may have been missed)."""
        for event in self._events.values():
            event.set()

    def dispatch(self, data: str) -> None:
        """Handle one notification: ``topic`` or ``topic subscription``."""
        topic, _, sub_id = data.partition(" ")
        self.wake(topic, sub_id or None)

    # -- the subscriber -----------------------------------------------------------------

    def _client(self, attempt: int) -> Redis:
        """A dedicated connection with no hidden reconnects (we must see every loss)."""
        url = self._settings.redis_url
        nodes = list(self._nodes()) if self._nodes is not None and attempt else []
        if nodes:
            host, port = random.choice(nodes)  # spreading, not crypto
            url = _with_node(url, host, port)
        return Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=None,
            socket_connect_timeout=self._settings.connect_timeout_ms / 1000,
            socket_keepalive=True,
            health_check_interval=_HEALTH_CHECK_S,
            retry=Retry(NoBackoff(), 0),
        )

    async def run(self) -> None:
        """Subscribe, dispatch, resubscribe after any loss (cancelled at close)."""
        delay = 0.1
        attempt = 0
        while True:
            client = self._client(attempt)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.connected = True
                self.connections += 1
                attempt, delay = 0, 0.1
                self.wake_all()
                while True:
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=_READ_TIMEOUT_S
                    )
                    if message is not None and message.get("type") == "message":
                        self.dispatch(str(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the subscriber must outlive any failure
                if self.connected:
                    logger.warning("redis wake-up subscriber lost (%s); resubscribing", exc)
                self.connected = False
                attempt += 1
            finally:
                self.connected = False
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                with contextlib.suppress(Exception):
                    await client.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RECONNECT_MAX_S)


def _with_node(url: str, host: str, port: int) -> str:
    """``url`` pointed at another node, credentials and options kept."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}:{port}" if userinfo else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))
