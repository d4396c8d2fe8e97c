"""The delivery path's shortcuts keep what they replace (issue 12).

The sender's connection budget takes free slots without suspending; an answer's body is
read only as far as needed, and the connection is still reused; a subscription's headers
are planned once per definition and come out as :func:`build_headers` made them; per
delivery metrics are tallied and folded into the same Prometheus series as ``observe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from standardwebhooks.webhooks import Webhook

from app.core.ids import new_secret
from app.core.models import Delivery, Envelope, Subscription, now_ms
from app.core.outcome import SendResult
from app.core.signing import sign
from app.dispatch.payload import HeaderPlan, build_body
from app.dispatch.sender import WebhookSender, _Slots
from app.observability.metrics import _LATENCY_BUCKETS, DispatchMetrics

DESTINATION = ("http", "example.test", 80)


async def test_free_slots_are_taken_at_once_and_given_back() -> None:
    slots = _Slots(total=3, per_destination=2)
    assert slots.try_take(DESTINATION)
    assert slots.try_take(DESTINATION)
    assert not slots.try_take(DESTINATION), "the destination's budget is 2"
    assert slots.try_take(("http", "other.test", 80))
    assert not slots.try_take(("http", "third.test", 80)), "the global budget is 3"
    assert slots.destinations == 2
    slots.give(DESTINATION)
    slots.give(DESTINATION)
    slots.give(("http", "other.test", 80))
    assert slots.destinations == 0, "an idle destination's gate is dropped"


async def test_waiters_get_slots_in_arrival_order_and_a_cancelled_one_passes_its_turn() -> None:
    slots = _Slots(total=10, per_destination=1)
    assert slots.try_take(DESTINATION)
    order: list[int] = []

    async def wait(n: int) -> None:
        await slots.take(DESTINATION)
        order.append(n)

    waiters = [asyncio.create_task(wait(n)) for n in range(3)]
    await asyncio.sleep(0)
    assert not slots.try_take(DESTINATION), "no overtaking of those waiting"
    waiters[0].cancel()
    await asyncio.gather(waiters[0], return_exceptions=True)
    slots.give(DESTINATION)
    await waiters[1]
    assert order == [1]
    slots.give(DESTINATION)
    await waiters[2]
    assert order == [1, 2]
    slots.give(DESTINATION)
    assert slots.destinations == 0


@dataclass
class Counting:
    """A keep-alive HTTP/1.1 server answering every request with ``answer``."""

    answer: bytes
    connections: int = 0
    requests: int = 0
    port: int = 0
    _server: asyncio.Server | None = field(default=None, repr=False)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                self.requests += 1
                writer.write(self.answer)
                await writer.drain()
        writer.close()


@contextlib.asynccontextmanager
async def counting(answer: bytes) -> AsyncIterator[Counting]:
    server = Counting(answer)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.mark.parametrize(
    ("answer", "status", "excerpt", "retry_after_ms"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 200, None, None),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, None, None),
        (b"HTTP/1.1 204 No Content\r\n\r\n", 204, None, None),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            200,
            None,
            None,
        ),
        (b"HTTP/1.1 500 Oops\r\nContent-Length: 4\r\n\r\nfail", 500, "fail", None),
        (
            (
                b"HTTP/1.1 429 Slow\r\nRetry-After: 7\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"4\r\nslow\r\n5\r\n down\r\n0\r\n\r\n"
            ),
            429,
            "slow down",
            7000,
        ),
    ],
    ids=["empty", "short", "no-content", "chunked", "error-body", "retry-after"],
)
async def test_answers_are_read_as_far_as_needed_on_one_kept_alive_connection(
    answer: bytes, status: int, excerpt: str | None, retry_after_ms: int | None
) -> None:
    sender = WebhookSender("test")
    await sender.start()
    try:
        async with counting(answer) as server:
            url = f"http://127.0.0.1:{server.port}/hook"
            results = [await sender.send(url, b"{}", {}, 2_000) for _ in range(5)]
            assert server.requests == 5
            assert server.connections == 1, "the connection is reused after every answer"
    finally:
        await sender.close()
    for result in results:
        assert (result.status, result.body_excerpt, result.retry_after_ms) == (
            status,
            excerpt,
            retry_after_ms,
        )


def _subscription(**changes: object) -> Subscription:
    base = Subscription(
        id="sub_1",
        topic="orders",
        url="http://example.test/hook",
        secret=new_secret(),
        headers={"X-Team": "billing", "Content-Type": "text/plain", "webhook-id": "forged"},
    )
    return base.with_changes(**changes)


def _delivery() -> Delivery:
    message = Envelope(
        id="msg_1",
        topic="orders",
        data={"n": 1, "text": "é"},
        published_at=now_ms(),
        traceparent="00-0123456789abcdef0123456789abcdef-0123456789abcdef-01",
    )
    return Delivery("sub_1", message, 2)


def test_planned_headers_are_the_standard_webhooks_headers_in_order() -> None:
    subscription = _subscription()
    delivery = _delivery()
    body = build_body(subscription, delivery)
    trace = {"traceparent": delivery.message.traceparent or ""}
    stamp = int(time.time())
    headers = HeaderPlan(subscription).headers("msg_1", body, trace, timestamp=stamp)
    assert list(headers) == [
        "X-Team",
        "Content-Type",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "traceparent",
    ]
    assert headers["Content-Type"] == "application/json"
    assert headers["webhook-id"] == "msg_1"
    assert subscription.secret is not None
    assert headers["webhook-signature"] == sign(subscription.secret, "msg_1", stamp, body)
    Webhook(subscription.secret).verify(body, headers)  # raises when the signature is wrong


def test_a_rotated_out_secret_signs_during_its_grace_period_only() -> None:
    old, new = new_secret(), new_secret()
    body = b'{"n":1}'
    stamp = int(time.time())
    rotating = _subscription(
        secret=new, previous_secret=old, previous_secret_expires_at=now_ms() + 60_000
    )
    signature = HeaderPlan(rotating).headers("msg_1", body, None, stamp)["webhook-signature"]
    assert signature == f"{sign(new, 'msg_1', stamp, body)} {sign(old, 'msg_1', stamp, body)}"
    expired = HeaderPlan(
        Subscription(
            id="sub_1",
            topic="orders",
            url="http://example.test/hook",
            secret=new,
            previous_secret=old,
            previous_secret_expires_at=now_ms() - 1,
        )
    )
    assert expired.headers("msg_1", body, None, stamp)["webhook-signature"] == sign(
        new, "msg_1", stamp, body
    )
    unsigned = HeaderPlan(_subscription(secret=None)).headers("msg_1", body, None, stamp)
    assert "webhook-signature" not in unsigned


def test_tallied_metrics_are_exposed_as_observed_ones() -> None:
    """The same durations through the tally and through ``Histogram.observe`` give the
    same buckets, sums and counts.
    """
    durations_ms = [0.2, 1.0, 1.5, 2.5, 7, 10, 49.9, 100, 999, 4_000, 60_000]
    metrics = DispatchMetrics()
    subscription = _subscription()
    for duration in durations_ms:
        metrics.attempt(subscription, SendResult(200, "delivered", duration_ms=duration))
    metrics.fold()
    reference = CollectorRegistry()
    observed = Histogram(
        "hookline_delivery_attempt_seconds",
        "Duration of one HTTP attempt",
        ["topic", "subscription"],
        buckets=_LATENCY_BUCKETS,
        registry=reference,
    )
    for duration in durations_ms:
        observed.labels("orders", "sub_1").observe(duration / 1000)

    def lines(registry: CollectorRegistry) -> list[str]:
        text = generate_latest(registry).decode()
        return [
            line
            for line in text.splitlines()
            if line.startswith("hookline_delivery_attempt_seconds_")
            and "_created" not in line
            and 'subscription="sub_1"' in line
        ]

    assert lines(metrics.registry) == lines(reference)
    assert len(lines(reference)) == len(_LATENCY_BUCKETS) + 3  # buckets, +Inf, count, sum
