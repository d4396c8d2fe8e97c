"""Rate limits end to end: attempt timestamps at a real receiver keep to the cap."""

from __future__ import annotations

from contextlib import AsyncExitStack

import httpx

from app.config import Settings
from app.main import create_app
from tests.backends import isolated_adapter_config, unique
from tests.harness import Hookline, eventually
from tests.receiver import Receiver, Reply

RATE = 20.0


def _observed_rate(times: list[float]) -> float:
    """Attempts per second between the first and the last (the first spends the burst)."""
    return (len(times) - 1) / (times[-1] - times[0])


async def test_attempts_keep_to_the_rate_retries_included(
    hookline: Hookline, receiver: Receiver
) -> None:
    topic = unique("throttled")
    for _ in range(10):  # every other first attempt fails: its retry pays for a token too
        receiver.script("/hook", Reply(500), Reply(200))
    sub = await hookline.subscribe(
        topic=topic,
        url=receiver.url(),
        max_in_flight=10,
        rate_limit={"per_second": RATE, "burst": 1},
        retry={"retry_delay_ms": 10, "jitter": 0, "backoff": "fixed"},
    )
    assert sub["rate_limit"] == {"per_second": RATE, "burst": 1}
    batch = await hookline.client.post(
        f"/v1/topics/{topic}/messages/batch", json={"messages": [{"data": i} for i in range(40)]}
    )
    assert batch.status_code == 202
    got = await receiver.wait_for(50, within_s=20)
    rate = _observed_rate([r.at for r in got])
    assert RATE * 0.9 <= rate <= RATE * 1.1, rate
    metrics = (await hookline.client.get("/metrics")).text
    assert "hookline_rate_limited_waits_total{" in metrics


async def test_shared_by_two_instances_on_redis(receiver: Receiver) -> None:
    """On Redis the bucket is shared: two instances together keep to one cap."""
    async with AsyncExitStack() as stack:
        config = await stack.enter_async_context(isolated_adapter_config("redis"))
        clients = []
        for _ in range(2):
            app = create_app(Settings(adapter={"class": "redis", "config": config}))  # type: ignore[arg-type]
            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app)
            client = httpx.AsyncClient(transport=transport, base_url="http://hookline")
            await stack.enter_async_context(client)
            clients.append((app, client))
        topic = unique("shared")
        created = await clients[0][1].post(
            "/v1/subscriptions",
            json={
                "topic": topic,
                "url": receiver.url(),
                "rate_limit": {"per_second": RATE, "burst": 1},
            },
        )
        assert created.status_code == 201, created.text
        sub_id = created.json()["id"]
        for app, _ in clients:
            app.state.runtime.dispatcher.poke()
            await eventually(lambda app=app: sub_id in app.state.runtime.dispatcher._workers)
        batch = await clients[1][1].post(
            f"/v1/topics/{topic}/messages/batch",
            json={"messages": [{"data": i} for i in range(40)]},
        )
        assert batch.status_code == 202
        got = await receiver.wait_for(40, within_s=20)
        rate = _observed_rate([r.at for r in got])
        assert RATE * 0.9 <= rate <= RATE * 1.1, rate


async def test_rate_limit_is_validated_and_can_be_lifted(
    hookline: Hookline, receiver: Receiver
) -> None:
    topic = unique("limits")
    for bad in (
        {"per_second": 0},
        {"per_second": 1, "burst": 0},
        {"burst": 2},
        {"per_second": "1"},
    ):
        response = await hookline.client.post(
            "/v1/subscriptions", json={"topic": topic, "url": receiver.url(), "rate_limit": bad}
        )
        assert response.status_code == 422, (bad, response.text)
    sub = await hookline.subscribe(
        topic=topic, url=receiver.url(), rate_limit={"per_second": 0.5, "burst": 2}
    )
    assert sub["rate_limit"] == {"per_second": 0.5, "burst": 2}
    lifted = await hookline.client.patch(
        f"/v1/subscriptions/{sub['id']}", json={"rate_limit": None}
    )
    assert lifted.json()["rate_limit"] is None
