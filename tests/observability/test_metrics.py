"""``/metrics`` after real deliveries, failures, filtered messages and dead letters."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.backends import unique
from tests.harness import Hookline, eventually, running_hookline
from tests.receiver import Receiver, Reply


async def scrape(
    hookline: Hookline, **headers: str
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await hookline.client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_count_what_happened(receiver: Receiver) -> None:
    receiver.default("/fail", Reply(status=500))
    async with running_hookline("builtin") as hookline:
        topic = unique("metered")
        even, failing, held = unique("even"), unique("failing"), unique("held")
        await hookline.subscribe(
            id=even, topic=topic, url=receiver.url("/ok"), condition="data.n % 2 == 0"
        )
        await hookline.subscribe(
            id=failing,
            topic=topic,
            url=receiver.url("/fail"),
            retry={"max_retries": 1, "retry_delay_ms": 10, "jitter": 0},
        )
        created = await hookline.client.post(
            "/v1/subscriptions",
            json={"id": held, "topic": topic, "url": receiver.url("/held"), "paused": True},
        )
        assert created.status_code == 201
        for n in range(4):
            await hookline.publish(topic, {"n": n})
        again = await hookline.client.post(
            f"/v1/topics/{topic}/messages",
            json={"data": {"n": 0}},
            headers={"Idempotency-Key": "k"},
        )
        repeat = await hookline.client.post(
            f"/v1/topics/{topic}/messages",
            json={"data": {"n": 0}},
            headers={"Idempotency-Key": "k"},
        )
        assert again.status_code == repeat.status_code == 202
        assert repeat.json()["duplicate"] is True

        await receiver.wait_for(3, "/ok")  # n = 0, 2 and the keyed 0
        await eventually(lambda: _dlq_is(hookline, topic, 5))
        await eventually(lambda: _settled(hookline, topic, held))

        async def all_counted() -> bool:
            got = await scrape(hookline)
            dead = value(
                got,
                "hookline_dead_lettered_total",
                topic=topic,
                subscription=failing,
                reason="http_error",
            )
            return dead == 5

        await eventually(all_counted)
        samples = await scrape(hookline)

    per = {"topic": topic}
    assert value(samples, "hookline_messages_published_total", **per) == 5
    assert value(samples, "hookline_messages_duplicate_total", **per) == 1
    assert value(samples, "hookline_deliveries_total", **per, subscription=even) == 3
    assert value(samples, "hookline_filtered_total", **per, subscription=even) == 2
    assert value(samples, "hookline_deliveries_total", **per, subscription=failing) == 0
    assert (
        value(
            samples,
            "hookline_delivery_attempts_failed_total",
            **per,
            subscription=failing,
            reason="http_error",
        )
        == 10
    )
    assert value(samples, "hookline_retries_scheduled_total", **per, subscription=failing) == 5
    assert (
        value(
            samples,
            "hookline_dead_lettered_total",
            **per,
            subscription=failing,
            reason="http_error",
        )
        == 5
    )
    assert value(samples, "hookline_delivery_attempt_seconds_count", **per, subscription=even) == 3
    assert (
        value(samples, "hookline_delivery_attempt_seconds_count", **per, subscription=failing) == 10
    )
    assert value(samples, "hookline_delivery_latency_seconds_count", **per, subscription=even) == 3
    assert (
        value(
            samples, "hookline_delivery_latency_seconds_bucket", **per, subscription=even, le="+Inf"
        )
        == 3
    )
    # Gauges, read from the adapter at scrape time.
    assert value(samples, "hookline_dlq", **per, subscription=failing) == 5
    assert value(samples, "hookline_backlog", **per, subscription=held) == 5
    assert value(samples, "hookline_backlog", **per, subscription=even) == 0
    assert value(samples, "hookline_in_flight", **per, subscription=failing) == 0
    assert value(samples, "hookline_scheduled", **per, subscription=failing) == 0


async def _settled(hookline: Hookline, topic: str, held: str) -> bool:
    """Every outcome recorded: nothing leased, waiting or scheduled but the paused one's."""
    stats = (await hookline.client.get(f"/v1/topics/{topic}")).json()
    return all(
        (s["backlog"], s["in_flight"], s["scheduled"]) == (0, 0, 0)
        for s in stats["subscriptions"]
        if s["id"] != held
    )


async def _dlq_is(hookline: Hookline, topic: str, count: int) -> bool:
    return await hookline.dlq_count(topic) == count


async def test_metrics_can_require_an_admin_key() -> None:
    keys = "admin-key-1234:admin,publish-key-1:publish"
    async with running_hookline(
        "builtin", api_keys=keys, auth={"protect_metrics": True}
    ) as hookline:
        assert (await hookline.client.get("/metrics")).status_code == 401
        wrong = await hookline.client.get(
            "/metrics", headers={"Authorization": "Bearer publish-key-1"}
        )
        assert wrong.status_code == 403
        assert wrong.json()["error"]["code"] == "forbidden"
        await scrape(hookline, Authorization="Bearer admin-key-1234")
    async with running_hookline("builtin", api_keys=keys) as hookline:
        await scrape(hookline)  # open by default, like most exporters
