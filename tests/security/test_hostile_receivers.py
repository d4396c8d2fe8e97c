"""Receivers that hang, trickle, flood, hang up or speak garbage.

Each costs hookline at most its ``timeout_ms`` per attempt and its own ``max_in_flight``
connections, ends in the DLQ with a reason and an excerpt that say what happened, and never
slows another subscription on the same topic.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.dispatch.sender import WebhookSender
from tests.backends import unique
from tests.harness import Hookline, eventually, running_hookline
from tests.receiver import Receiver
from tests.security.hostile import (
    Behaviour,
    HostileServer,
    close_mid_response,
    endless_headers,
    garbage,
    gigabytes,
    hang,
    slow_headers,
    trickle,
)

TIMEOUT_MS = 400
MAX_IN_FLIGHT = 2
MESSAGES = 4
SLACK_S = 2.0
"""Scheduling slack on top of ``timeout_ms`` when measuring what one attempt cost."""


@pytest.fixture
async def hookline() -> AsyncIterator[Hookline]:
    async with running_hookline("builtin", delivery={"shutdown_grace_ms": 0}) as running:
        yield running


async def serve(behaviour: Behaviour) -> HostileServer:
    server = HostileServer(behaviour)
    await server.start()
    return server


async def dlq_entries(hookline: Hookline, topic: str) -> list[dict[str, Any]]:
    response = await hookline.client.get(f"/v1/topics/{topic}/dlq")
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


@pytest.mark.parametrize(
    ("behaviour", "reason", "status", "excerpt"),
    [
        (hang, "timeout", None, f"no response within {TIMEOUT_MS} ms"),
        (
            trickle,
            "timeout",
            None,
            f"response not complete within {TIMEOUT_MS} ms (after status 200 and",
        ),
        (gigabytes, "http_error", 500, "GIGABYTES GIGABYTES"),
        (close_mid_response, "connection_error", None, "after status 200 and 7 body bytes"),
        (garbage, "invalid_response", None, "before any response"),
        (endless_headers, "invalid_response", None, "before any response"),
        (slow_headers, "timeout", None, f"no response within {TIMEOUT_MS} ms"),
    ],
    ids=[
        "hang",
        "trickle",
        "gigabytes",
        "close-mid-response",
        "garbage",
        "endless-headers",
        "slow-headers",
    ],
)
async def test_each_hostile_receiver_ends_in_the_dlq_at_bounded_cost(
    hookline: Hookline, behaviour: Behaviour, reason: str, status: int | None, excerpt: str
) -> None:
    server = await serve(behaviour)
    try:
        topic = unique("hostile")
        await hookline.subscribe(
            topic=topic,
            url=server.url(),
            timeout_ms=TIMEOUT_MS,
            max_in_flight=MAX_IN_FLIGHT,
            retry={"max_retries": 1, "retry_delay_ms": 10, "jitter": 0},
        )
        for i in range(MESSAGES):
            await hookline.publish(topic, {"n": i})
        await eventually(lambda: _dlq_has(hookline, topic, MESSAGES), within_s=60)

        for entry in await dlq_entries(hookline, topic):
            assert entry["attempts"] == 2
            error = entry["last_error"]
            assert error["reason"] == reason, error
            assert error.get("status") == status, error
            assert excerpt in error["body_excerpt"], error
            assert len(error["body_excerpt"]) <= 1024

        assert server.most_open <= MAX_IN_FLIGHT
        assert len(server.connections) >= MESSAGES * 2
        for connection in server.connections:
            assert connection.lasted_s <= TIMEOUT_MS / 1000 + SLACK_S, connection
            # max_response_bytes (64 KiB) read, plus what kernel buffers soak up: never 1 GiB
            assert connection.bytes_sent < 64 * 1024 * 1024, connection
        stats = (await hookline.client.get(f"/v1/topics/{topic}")).json()
        assert (stats["backlog"], stats["in_flight"], stats["scheduled"]) == (0, 0, 0)
    finally:
        await server.stop()


async def _dlq_has(hookline: Hookline, topic: str, count: int) -> bool:
    return await hookline.dlq_count(topic) >= count


async def test_a_stuck_subscription_does_not_slow_its_neighbour(
    hookline: Hookline, receiver: Receiver
) -> None:
    """``stuck`` holds two connections for 30 s; ``healthy`` on the same topic gets every
    message meanwhile, within a generous deadline.
    """
    server = await serve(hang)
    try:
        topic = unique("shared")
        await hookline.subscribe(
            id=unique("stuck"),
            topic=topic,
            url=server.url(),
            timeout_ms=30_000,
            max_in_flight=MAX_IN_FLIGHT,
        )
        await hookline.subscribe(id=unique("healthy"), topic=topic, url=receiver.url("/healthy"))
        count = 60
        for i in range(count):
            await hookline.publish(topic, i)

        got = await receiver.wait_for(count, "/healthy", within_s=20)

        assert sorted(r.json()["data"] for r in got) == list(range(count))
        assert server.open_now == MAX_IN_FLIGHT  # still stuck, at its own limit, no more
        assert server.most_open == MAX_IN_FLIGHT
        assert all(c.closed is None for c in server.connections)

        async def healthy_drained() -> bool:
            # The receiver has the last requests a moment before their acks are recorded.
            stats = (await hookline.client.get(f"/v1/topics/{topic}")).json()
            healthy = next(s for s in stats["subscriptions"] if s["id"].startswith("healthy"))
            return (healthy["backlog"], healthy["in_flight"]) == (0, 0)

        await eventually(healthy_drained)
        stats = (await hookline.client.get(f"/v1/topics/{topic}")).json()
        stuck = next(s for s in stats["subscriptions"] if s["id"].startswith("stuck"))
        assert stuck["in_flight"] == MAX_IN_FLIGHT
        assert stuck["backlog"] + stuck["in_flight"] == count
    finally:
        await server.stop()


@pytest.mark.parametrize("behaviour", [garbage, close_mid_response, hang])
async def test_credentials_in_the_url_never_reach_an_excerpt(behaviour: Behaviour) -> None:
    """The client sends URL credentials as Basic auth; no error text may echo them."""
    server = await serve(behaviour)
    sender = WebhookSender("test")
    await sender.start()
    try:
        url = server.url().replace("http://", "http://alice:hunter2-secret@")
        result = await sender.send(url, b"{}", {}, timeout_ms=TIMEOUT_MS)
        refused = await sender.send(
            "http://alice:hunter2-secret@127.0.0.1:9/", b"{}", {}, timeout_ms=TIMEOUT_MS
        )
    finally:
        await sender.close()
        await server.stop()
    for failed in (result, refused):
        assert failed.status is None
        assert failed.body_excerpt
        assert "hunter2" not in failed.body_excerpt
