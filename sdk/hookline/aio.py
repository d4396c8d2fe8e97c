"""The asyncio client: ``AsyncClient("http://127.0.0.1:8080", api_key=...)``.

Every method is one API call, awaited; :mod:`hookline.client` has the blocking twin.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar, Unpack

import httpx

from hookline import _ops
from hookline._http import (
    Op,
    RetrySettings,
    connection_error,
    default_headers,
    resolve_key,
    resolve_url,
    wait_before_retry,
)
from hookline.models import (
    BatchItemResult,
    DlqPage,
    Message,
    MessageInfo,
    PublishResult,
    Subscription,
)
from hookline.options import SubscriptionOptions, subscription_body

T = TypeVar("T")


class AsyncClient:
    """Publish to hookline and manage its subscriptions and DLQ.

    ``base_url`` defaults to ``HOOKLINE_URL`` (then ``http://127.0.0.1:8080``), ``api_key``
    to ``HOOKLINE_API_KEY``. A 503 (waiting its ``Retry-After``) or a connection error is
    retried up to ``max_retries`` times; each publish carries an ``Idempotency-Key`` kept
    across those retries, so a retried publish is stored once.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 10.0,
        max_retries: int = 3,
        retry: RetrySettings | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.base_url = resolve_url(base_url)
        self._retry = retry or RetrySettings(max_retries=max_retries)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout,
            headers={**default_headers(resolve_key(api_key)), **(headers or {})},
        )
        self.subscriptions = Subscriptions(self)
        self.dlq = Dlq(self)
        self.messages = Messages(self)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def send(self, op: Op[T]) -> T:
        """Send one call, retrying as :class:`~hookline._http.RetrySettings` allows."""
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._http.send(op.request(self._http))
            except httpx.TransportError as exc:
                wait = wait_before_retry(op, self._retry, attempt, None, exc)
                if wait is None:
                    raise connection_error(op, exc, self.base_url) from exc
            else:
                wait = wait_before_retry(op, self._retry, attempt, response, None)
                if wait is None:
                    return op.result(response)
            await asyncio.sleep(wait)

    async def call(
        self, function_id: str, args: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> Any:
        """The engine's ``client.call``: ``queue.enqueue`` -> ``None``, ``queue.dlq_count``
        -> a count, ``queue.redrive_dlq`` -> the number redriven.
        """
        return await self.send(_ops.call(function_id, args, idempotency_key))

    async def publish(
        self,
        topic: str,
        data: Any,
        *,
        delay_ms: int | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> PublishResult:
        """Publish one message (``extra``: fields of newer servers, e.g. ``ordering_key``)."""
        op = _ops.publish(
            topic,
            data,
            delay_ms=delay_ms,
            headers=headers,
            idempotency_key=idempotency_key,
            extra=extra,
        )
        return await self.send(op)

    async def publish_batch(
        self, topic: str, messages: Sequence[Message | Mapping[str, Any]]
    ) -> list[BatchItemResult]:
        """Publish up to ``limits.max_batch`` messages, all or nothing."""
        return await self.send(_ops.publish_batch(topic, messages))


class Subscriptions:
    """``client.subscriptions``: the HTTP form of queue triggers."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create(
        self,
        topic: str,
        url: str,
        *,
        id: str | None = None,  # noqa: A002 - the API's field name
        **options: Unpack[SubscriptionOptions],
    ) -> Subscription:
        """Register ``url`` on ``topic``; the answer holds the secret in clear, this once."""
        body = subscription_body(options, id=id, topic=topic, url=url)
        return await self._client.send(_ops.create_subscription(body))

    async def get(self, subscription_id: str) -> Subscription:
        """One subscription (secret masked)."""
        return await self._client.send(_ops.get_subscription(subscription_id))

    async def list(self, topic: str | None = None) -> list[Subscription]:
        """All subscriptions, or those of ``topic``."""
        return await self._client.send(_ops.list_subscriptions(topic))

    async def replace(
        self, subscription_id: str, topic: str, url: str, **options: Unpack[SubscriptionOptions]
    ) -> Subscription:
        """``PUT``: absent fields return to defaults; the secret is kept unless sent."""
        body = subscription_body(options, topic=topic, url=url)
        return await self._client.send(_ops.replace_subscription(subscription_id, body))

    async def update(
        self, subscription_id: str, **options: Unpack[SubscriptionOptions]
    ) -> Subscription:
        """``PATCH``: only the fields given change (``url`` goes in ``extra``)."""
        body = subscription_body(options)
        return await self._client.send(_ops.update_subscription(subscription_id, body))

    async def delete(self, subscription_id: str) -> None:
        """Remove it and its pending messages (its DLQ entries stay)."""
        await self._client.send(_ops.delete_subscription(subscription_id))

    async def pause(self, subscription_id: str) -> Subscription:
        """Stop delivering; messages published meanwhile wait."""
        return await self._client.send(_ops.set_paused(subscription_id, True))

    async def resume(self, subscription_id: str) -> Subscription:
        """Deliver again, starting with what waited."""
        return await self._client.send(_ops.set_paused(subscription_id, False))

    async def rotate_secret(
        self, subscription_id: str, *, grace_ms: int | None = None
    ) -> Subscription:
        """A new secret (in the answer, in clear); the old one signs too for ``grace_ms``."""
        return await self._client.send(_ops.rotate_secret(subscription_id, grace_ms))


class Dlq:
    """``client.dlq``: a topic's dead letters."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def count(self, topic: str, *, subscription: str | None = None) -> int:
        """How many messages gave up on ``topic`` (for one subscription when given)."""
        return await self._client.send(_ops.dlq_count(topic, subscription))

    async def list(
        self,
        topic: str,
        *,
        subscription: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> DlqPage:
        """One page of entries, oldest first; pass ``next_cursor`` back for more."""
        return await self._client.send(_ops.dlq_list(topic, subscription, limit, cursor))

    async def redrive(
        self, topic: str, *, subscription: str | None = None, ids: Sequence[str] | None = None
    ) -> int:
        """Send entries back to the subscription that failed them; how many went."""
        return await self._client.send(_ops.dlq_redrive(topic, subscription, ids))

    async def purge(self, topic: str, *, subscription: str | None = None) -> int:
        """Delete entries for good; how many."""
        return await self._client.send(_ops.dlq_purge(topic, subscription))


class Messages:
    """``client.messages``: where a published message went."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def get(self, message_id: str) -> MessageInfo:
        """The message and its state and attempts per subscription.

        Raises :class:`~hookline.NotFound` for an unknown id and
        :class:`~hookline.Unsupported` when the server has no message lookup.
        """
        return await self._client.send(_ops.get_message(message_id))
