"""Deadlines end to end: a message is never attempted after ``expires_at``/``ttl_ms``."""

from __future__ import annotations

from typing import Any

from app.core.models import now_ms
from tests.backends import unique
from tests.harness import Hookline, eventually
from tests.receiver import Receiver, Reply


async def _dlq(hookline: Hookline, topic: str) -> list[dict[str, Any]]:
    response = await hookline.client.get(f"/v1/topics/{topic}/dlq")
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


async def test_expired_before_the_first_attempt(hookline: Hookline, receiver: Receiver) -> None:
    topic = unique("otp")
    dead_topic = unique("otp.expired")
    sub = await hookline.subscribe(topic=topic, url=receiver.url(), dead_letter_topic=dead_topic)
    await hookline.subscribe(topic=dead_topic, url=receiver.url("/dead"))
    await hookline.client.post(f"/v1/subscriptions/{sub['id']}/pause")
    await eventually(lambda: sub["id"] not in hookline.runtime.dispatcher._workers)
    published = await hookline.publish(topic, {"code": 1234}, ttl_ms=300)
    expires_at = now_ms() + 300
    await eventually(lambda: now_ms() > expires_at + 50)  # the deadline is what is awaited
    await hookline.client.post(f"/v1/subscriptions/{sub['id']}/resume")
    [dead] = await receiver.wait_for(1, "/dead")
    assert receiver.requests("/hook") == []
    body = dead.json()
    assert body["data"] == {"code": 1234}
    assert body["dead_letter"]["last_error"]["reason"] == "expired"
    [entry] = await _dlq(hookline, topic)
    assert entry["message_id"] == published["id"]
    assert entry["last_error"]["reason"] == "expired"
    assert "before attempt" in entry["last_error"]["body_excerpt"]
    metrics = (await hookline.client.get("/metrics")).text
    assert f'hookline_expired_total{{subscription="{sub["id"]}",topic="{topic}"}} 1.0' in metrics


async def test_no_retry_is_scheduled_past_the_deadline(
    hookline: Hookline, receiver: Receiver
) -> None:
    topic = unique("price")
    receiver.default("/hook", Reply(500))
    await hookline.subscribe(
        topic=topic,
        url=receiver.url(),
        retry={"max_retries": 10, "retry_delay_ms": 1500, "backoff": "fixed", "jitter": 0},
    )
    deadline = now_ms() + 2500
    await hookline.publish(topic, {"price": 9}, expires_at=deadline)
    await receiver.wait_for(2, "/hook")

    async def dead_lettered() -> bool:
        return len(await _dlq(hookline, topic)) == 1

    await eventually(dead_lettered)
    [entry] = await _dlq(hookline, topic)
    assert now_ms() < deadline  # refused when the retry was due past it, not at the deadline
    assert entry["last_error"]["reason"] == "expired"
    assert entry["last_error"]["status"] == 500
    assert entry["attempts"] == 2
    assert len(receiver.requests("/hook")) == 2
    first = receiver.requests("/hook")[0].json()
    assert first["expires_at"] == deadline  # the receiver sees the deadline too


async def test_deadline_forms_on_every_publish_shape(
    hookline: Hookline, receiver: Receiver
) -> None:
    topic = unique("shapes")
    await hookline.subscribe(topic=topic, url=receiver.url())
    later = now_ms() + 60_000
    await hookline.publish(topic, 1, expires_at="2999-01-01T00:00:00Z")
    batch = await hookline.client.post(
        f"/v1/topics/{topic}/messages/batch",
        json={"messages": [{"data": 2, "ttl_ms": 60_000}, {"data": 3, "expires_at": later}]},
    )
    assert batch.status_code == 202, batch.text
    engine = await hookline.client.post(
        "/v1/enqueue", json={"topic": topic, "data": 4, "ttl_ms": 60_000}
    )
    assert engine.status_code == 202, engine.text
    function = await hookline.client.post(
        "/v1/functions/queue.enqueue", json={"topic": topic, "data": 5, "expires_at": later}
    )
    assert function.status_code == 200, function.text
    got = await receiver.wait_for(5)
    deadlines = {r.json()["data"]: r.json()["expires_at"] for r in got}
    assert deadlines[1] == 32472144000000
    assert deadlines[3] == deadlines[5] == later
    assert later - 1000 < deadlines[2] <= later + 1000


async def test_impossible_deadlines_are_refused(hookline: Hookline, receiver: Receiver) -> None:
    topic = unique("refused")
    await hookline.subscribe(topic=topic, url=receiver.url())
    cases: list[tuple[str, dict[str, Any], str]] = [
        (
            f"/v1/topics/{topic}/messages",
            {"data": 1, "ttl_ms": 10, "expires_at": now_ms() + 9e6},
            "ttl_ms",
        ),
        (
            f"/v1/topics/{topic}/messages",
            {"data": 1, "expires_at": "2001-01-01T00:00:00Z"},
            "expires_at",
        ),
        (f"/v1/topics/{topic}/messages", {"data": 1, "expires_at": "soon"}, "expires_at"),
        (f"/v1/topics/{topic}/messages", {"data": 1, "ttl_ms": 100, "delay_ms": 200}, "ttl_ms"),
        (f"/v1/topics/{topic}/messages", {"data": 1, "ttl_ms": 0}, "ttl_ms"),
        (
            f"/v1/topics/{topic}/messages/batch",
            {"messages": [{"data": 1}, {"data": 2, "expires_at": 1}]},
            "messages.1.expires_at",
        ),
        ("/v1/enqueue", {"topic": topic, "data": 1, "expires_at": 1}, "expires_at"),
        ("/v1/functions/queue.enqueue", {"topic": topic, "expires_at": 1}, "expires_at"),
    ]
    for path, body, field in cases:
        response = await hookline.client.post(path, json=body)
        assert response.status_code == 422, (path, body, response.text)
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        assert error["message"].startswith(field), (field, error)
    info = (await hookline.client.get(f"/v1/topics/{topic}")).json()
    assert info["backlog"] == 0  # nothing of a refused batch was stored
    assert receiver.requests() == []
