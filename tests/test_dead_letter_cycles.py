"""Dead-letter topics that loop: refused at save, and bounded at run time when built anyway.

Issue 9 item 2: A on ``a`` dead-letters to ``b``, B on ``b`` dead-letters to ``a``, both
failing, turned one message into thousands of deliveries per second, forever.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.adapters.factory import build_adapter
from app.core.models import RetryPolicy, Subscription
from tests.backends import isolated_adapter_config, unique
from tests.harness import eventually, running_hookline
from tests.process import ServeProcess, write_config
from tests.receiver import Receiver, Reply

FAST_FAILING = {"max_retries": 0, "retry_delay_ms": 20, "jitter": 0}


def _behind_the_validators_back(sub_id: str, topic: str, url: str, dlt: str) -> Subscription:
    """B of the cycle, as a second instance racing with the first could store it."""
    return Subscription(
        id=sub_id,
        topic=topic,
        url=url,
        retry=RetryPolicy(max_retries=0, retry_delay_ms=20, jitter=0),
        dead_letter_topic=dlt,
    )


async def test_cycles_are_refused_at_save_naming_the_cycle() -> None:
    async with running_hookline("builtin") as hookline:
        client = hookline.client
        for sub_id, topic, dlt in (("A", "a", "b"), ("B", "b", "c")):
            body = {"id": sub_id, "topic": topic, "url": "http://127.0.0.1:9/h"}
            created = await client.post(
                "/v1/subscriptions", json={**body, "dead_letter_topic": dlt}
            )
            assert created.status_code == 201, created.text

        closing = {"id": "C", "topic": "c", "url": "http://127.0.0.1:9/h", "dead_letter_topic": "a"}
        refused = await client.post("/v1/subscriptions", json=closing)
        assert refused.status_code == 409, refused.text
        error = refused.json()["error"]
        assert error["code"] == "dead_letter_cycle"
        assert "c -> a (via C) -> b (via A) -> c (via B)" in error["message"]
        assert [hop["subscription_id"] for hop in error["details"]["cycle"]] == ["C", "A", "B"]
        assert (await client.get("/v1/subscriptions/C")).status_code == 404

        # The engine's metadata route is the same route.
        via_metadata = {
            "id": "C",
            "topic": "c",
            "url": "http://127.0.0.1:9/h",
            "metadata": {"infrastructure": {"queue": {"dead_letter_topic": "b"}}},
        }
        assert (await client.post("/v1/subscriptions", json=via_metadata)).status_code == 409

        # PUT and PATCH of an existing subscription are checked the same way.
        plain = {"id": "C", "topic": "c", "url": "http://127.0.0.1:9/h"}
        assert (await client.post("/v1/subscriptions", json=plain)).status_code == 201
        patched = await client.patch("/v1/subscriptions/C", json={"dead_letter_topic": "b"})
        assert patched.status_code == 409, patched.text
        replacement = {"topic": "c", "url": "http://127.0.0.1:9/h", "dead_letter_topic": "a"}
        put = await client.put("/v1/subscriptions/C", json=replacement)
        assert put.status_code == 409, put.text
        assert (await client.get("/v1/subscriptions/C")).json()["dead_letter_topic"] is None

        # Breaking the cycle elsewhere makes the same change fine.
        assert (await client.delete("/v1/subscriptions/B")).status_code == 204
        patched = await client.patch("/v1/subscriptions/C", json={"dead_letter_topic": "a"})
        assert patched.status_code == 200, patched.text


async def test_a_cycle_built_behind_the_validators_back_terminates(receiver: Receiver) -> None:
    topic_a, topic_b = unique("a"), unique("b")
    receiver.default("/a", Reply(status=500))
    receiver.default("/b", Reply(status=500))
    async with running_hookline("builtin") as hookline:
        await hookline.subscribe(
            id="A",
            topic=topic_a,
            url=receiver.url("/a"),
            dead_letter_topic=topic_b,
            retry=FAST_FAILING,
        )
        refused = await hookline.client.post(
            "/v1/subscriptions",
            json={
                "id": "B",
                "topic": topic_b,
                "url": receiver.url("/b"),
                "dead_letter_topic": topic_a,
            },
        )
        assert refused.status_code == 409
        runtime = hookline.runtime
        await runtime.adapter.create_subscription(
            _behind_the_validators_back("B", topic_b, receiver.url("/b"), topic_a)
        )
        runtime.dispatcher.poke()
        await hookline.wait_until_consuming("B")

        await hookline.publish(topic_a, {"n": 1})

        async def hop_limited() -> list[dict[str, Any]]:
            entries = (await hookline.client.get(f"/v1/topics/{topic_b}/dlq")).json()["entries"]
            return [e for e in entries if e["last_error"]["reason"] == "dead_letter_hop_limit"]

        await eventually(lambda: _non_empty(hop_limited()))
        # a (hops 0) -> b (1) -> a (2) -> b (3): the 4th dead letter stays in b's DLQ.
        # Its entry is the last thing the chain does, so the counts are final now.
        [kept] = await hop_limited()
        assert kept["last_error"]["status"] == 500
        assert "not republished" in kept["last_error"]["body_excerpt"]
        assert len(receiver.requests("/a")) == 2
        assert len(receiver.requests("/b")) == 2
        assert await hookline.dlq_count(topic_a) == 2
        assert await hookline.dlq_count(topic_b) == 2
        last_b = receiver.requests("/b")[-1].json()
        assert last_b["dead_letter"]["hops"] == 3
        assert last_b["dead_letter"]["source_topic"] == topic_a
        for topic in (topic_a, topic_b):
            stats = (await hookline.client.get(f"/v1/topics/{topic}")).json()
            assert (stats["backlog"], stats["in_flight"], stats["scheduled"]) == (0, 0, 0)
        metrics = (await hookline.client.get("/metrics")).text
        assert (
            f'hookline_dead_lettered_total{{reason="dead_letter_hop_limit",'
            f'subscription="B",topic="{topic_b}"}} 1.0' in metrics
        )


async def _non_empty(awaitable: Any) -> bool:
    return bool(await awaitable)


async def test_serve_refuses_cycles_and_bounds_a_raced_one(
    tmp_path: Path, receiver: Receiver
) -> None:
    """A real ``hookline serve`` on Redis; the cycle's second half is stored by another
    client of the same registry, as a second instance racing the first would.
    """
    topic_a, topic_b = unique("a"), unique("b")
    receiver.default("/a", Reply(status=500))
    receiver.default("/b", Reply(status=500))
    async with isolated_adapter_config("redis") as adapter_config:
        config = write_config(
            tmp_path / "config.yaml",
            "modules::queue::RedisAdapter",
            adapter_config,
            delivery={"max_dead_letter_hops": 2},
        )
        server = ServeProcess(config, tmp_path / "serve.log")
        other = build_adapter("redis", adapter_config)
        await other.start()
        try:
            await asyncio.to_thread(server.wait_ready)
            async with httpx.AsyncClient(base_url=server.url) as client:
                a = {"id": "A", "topic": topic_a, "url": receiver.url("/a")}
                created = await client.post(
                    "/v1/subscriptions",
                    json={**a, "dead_letter_topic": topic_b, "retry": FAST_FAILING},
                )
                assert created.status_code == 201, created.text
                b = {"id": "B", "topic": topic_b, "url": receiver.url("/b")}
                refused = await client.post(
                    "/v1/subscriptions", json={**b, "dead_letter_topic": topic_a}
                )
                assert refused.status_code == 409, refused.text
                assert refused.json()["error"]["code"] == "dead_letter_cycle"

                await other.create_subscription(
                    _behind_the_validators_back("B", topic_b, receiver.url("/b"), topic_a)
                )
                published = await client.post(f"/v1/topics/{topic_a}/messages", json={"data": 1})
                assert published.status_code == 202

                async def hop_limited() -> bool:
                    got = await client.get(f"/v1/topics/{topic_a}/dlq")
                    return any(
                        e["last_error"]["reason"] == "dead_letter_hop_limit"
                        for e in got.json()["entries"]
                    )

                # a (0) -> b (1) -> a (2): with a limit of 2 the third dead letter stays.
                await eventually(hop_limited, within_s=20)
                assert len(receiver.requests("/a")) == 2
                assert len(receiver.requests("/b")) == 1
                count_a = await client.get(f"/v1/topics/{topic_a}/dlq/count")
                count_b = await client.get(f"/v1/topics/{topic_b}/dlq/count")
                assert (count_a.json()["count"], count_b.json()["count"]) == (2, 1)
        finally:
            await other.close()
            server.close()


async def test_a_static_cycle_stops_check_config_with_one_line(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "config.yaml",
        "modules::queue::BuiltinQueueAdapter",
        {},
        subscriptions=[
            {"id": "A", "topic": "a", "url": "http://127.0.0.1:9/a", "dead_letter_topic": "b"},
            {
                "id": "B",
                "topic": "b",
                "url": "http://127.0.0.1:9/b",
                "metadata": {"infrastructure": {"queue": {"dead_letter_topic": "a"}}},
            },
        ],
    )
    checked = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        "check-config",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await checked.communicate()
    assert checked.returncode != 0
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert "subscriptions[0].dead_letter_topic" in lines[0]
    assert "a -> b (via A) -> a (via B)" in lines[0]


@pytest.mark.parametrize("limit", [0, 101])
def test_the_hop_limit_is_bounded(limit: int) -> None:
    from app.config import ConfigError, Settings

    with pytest.raises((ConfigError, ValueError)):
        Settings(delivery={"max_dead_letter_hops": limit})  # type: ignore[arg-type]
