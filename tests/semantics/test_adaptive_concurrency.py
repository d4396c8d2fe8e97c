"""Adaptive concurrency end to end: the window eases off a struggling receiver, then regrows."""

from __future__ import annotations

from tests.backends import unique
from tests.harness import Hookline, eventually
from tests.receiver import Receiver, Reply


async def test_window_shrinks_on_failures_and_slowness_and_grows_back(
    hookline: Hookline, receiver: Receiver
) -> None:
    topic = unique("adaptive")
    sub = await hookline.subscribe(
        topic=topic,
        url=receiver.url(),
        max_in_flight="auto",
        max_in_flight_ceiling=12,
        timeout_ms=300,
        retry={"max_retries": 100, "retry_delay_ms": 20, "backoff": "fixed", "jitter": 0},
    )
    assert sub["max_in_flight"] == "auto"
    assert sub["max_in_flight_ceiling"] == 12
    path = f"/v1/subscriptions/{sub['id']}"

    async def window() -> int:
        shown = (await hookline.client.get(path)).json()["concurrency"]
        assert shown["mode"] == "auto"
        assert shown["ceiling"] == 12
        value: int = shown["window"]
        return value

    assert await window() == 4

    async def publish_more() -> None:
        """Each phase brings its own traffic: a fast backend drains the previous one."""
        for _ in range(3):
            batch = await hookline.client.post(
                f"/v1/topics/{topic}/messages/batch",
                json={"messages": [{"data": i} for i in range(100)]},
            )
            assert batch.status_code == 202, batch.text

    await publish_more()

    async def at_least(n: int) -> bool:
        return await window() >= n

    async def at_most(n: int) -> bool:
        return await window() <= n

    await eventually(lambda: at_least(7), within_s=20)
    receiver.default("/hook", Reply(503))  # failing: halved down to 1
    await publish_more()
    await eventually(lambda: at_most(1), within_s=20)
    receiver.default("/hook", Reply(200))  # healthy again: grows back
    await eventually(lambda: at_least(5), within_s=20)
    receiver.default("/hook", Reply(200, delay_s=1.0))  # slow beyond timeout_ms: eased off
    await publish_more()
    await eventually(lambda: at_most(1), within_s=20)
    receiver.default("/hook", Reply(200))
    await eventually(lambda: at_least(3), within_s=20)
    metrics = (await hookline.client.get("/metrics")).text
    assert f'hookline_concurrency_window{{subscription="{sub["id"]}"}}' in metrics


async def test_auto_and_fixed_round_trip(hookline: Hookline, receiver: Receiver) -> None:
    topic = unique("modes")
    sub = await hookline.subscribe(topic=topic, url=receiver.url(), max_in_flight="auto")
    assert sub["max_in_flight_ceiling"] == 100
    path = f"/v1/subscriptions/{sub['id']}"
    ceiling = await hookline.client.patch(path, json={"max_in_flight_ceiling": 8})
    assert ceiling.json()["max_in_flight"] == "auto"
    assert ceiling.json()["concurrency"]["ceiling"] == 8
    fixed = await hookline.client.patch(path, json={"max_in_flight": 5})
    assert fixed.json()["max_in_flight"] == 5
    assert fixed.json()["concurrency"] == {"mode": "fixed", "window": 5, "ceiling": 5}
    refused = await hookline.client.patch(path, json={"max_in_flight_ceiling": 8})
    assert refused.status_code == 422
    assert refused.json()["error"]["message"].startswith("max_in_flight_ceiling")
    bad = await hookline.client.patch(path, json={"max_in_flight": "fast"})
    assert bad.status_code == 422
