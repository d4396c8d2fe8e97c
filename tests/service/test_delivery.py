"""Delivery, end to end, on every adapter: a real receiver, real HTTP, real storage."""

from __future__ import annotations

import base64
import itertools
import time

import pytest
from standardwebhooks.webhooks import Webhook

from tests.backends import unique
from tests.harness import Hookline, eventually
from tests.receiver import Receiver, Reply

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def test_fan_out_to_every_subscription(hookline: Hookline, receiver: Receiver) -> None:
    topic = unique("user.created")
    for path in ("/a", "/b", "/c"):
        await hookline.subscribe(topic=topic, url=receiver.url(path))
    published = await hookline.publish(topic, {"user": 1})
    for path in ("/a", "/b", "/c"):
        [got] = await receiver.wait_for(1, path)
        body = got.json()
        assert body["id"] == published["id"]
        assert body["topic"] == topic
        assert body["data"] == {"user": 1}
        assert body["attempt"] == 1
        assert isinstance(body["published_at"], int)
        assert got.headers["webhook-id"] == published["id"]
        assert got.headers["Content-Type"] == "application/json"
        assert got.headers["User-Agent"].startswith("hookline/")


async def test_signature_verifies_with_standardwebhooks(
    hookline: Hookline, receiver: Receiver
) -> None:
    topic = unique("signed")
    sub = await hookline.subscribe(topic=topic, url=receiver.url())
    assert sub["secret"].startswith("whsec_")
    await hookline.publish(topic, {"amount": 42, "text": "naïve ✓"})
    [got] = await receiver.wait_for(1, "/hook")
    headers = {k.lower(): v for k, v in got.headers.items()}
    payload = Webhook(sub["secret"]).verify(got.body, headers)
    assert payload["data"] == {"amount": 42, "text": "naïve ✓"}
    tampered = got.body.replace(b"42", b"43")
    with pytest.raises(Exception, match=r"(?i)signature"):
        Webhook(sub["secret"]).verify(tampered, headers)


async def test_unsigned_when_secret_is_null_and_own_headers_sent(
    hookline: Hookline, receiver: Receiver
) -> None:
    topic = unique("plain")
    await hookline.subscribe(
        topic=topic, url=receiver.url(), secret=None, headers={"X-Team": "billing"}
    )
    await hookline.publish(topic, 1)
    [got] = await receiver.wait_for(1)
    assert "webhook-signature" not in {k.lower() for k in got.headers}
    assert got.headers["X-Team"] == "billing"


async def test_data_payload_mode_sends_bare_data(hookline: Hookline, receiver: Receiver) -> None:
    topic = unique("bare")
    await hookline.subscribe(topic=topic, url=receiver.url(), payload="data")
    await hookline.publish(topic, {"order": 7})
    [got] = await receiver.wait_for(1)
    assert got.json() == {"order": 7}


async def test_trace_context_reaches_the_receiver(hookline: Hookline, receiver: Receiver) -> None:
    topic = unique("traced")
    await hookline.subscribe(topic=topic, url=receiver.url())
    response = await hookline.client.post(
        f"/v1/topics/{topic}/messages",
        json={"data": {}},
        headers={"traceparent": TRACEPARENT, "baggage": "tenant=acme,plan=pro"},
    )
    assert response.status_code == 202
    [got] = await receiver.wait_for(1)
    trace_id = TRACEPARENT.split("-")[1]
    assert got.headers["traceparent"].split("-")[1] == trace_id
    assert "tenant=acme" in got.headers["baggage"]
    assert got.json()["traceparent"].split("-")[1] == trace_id


async def test_condition_true_false_and_error(hookline: Hookline, receiver: Receiver) -> None:
    topic = unique("orders")
    await hookline.subscribe(
        topic=topic, url=receiver.url("/high"), condition="data.priority == 'high'"
    )
    await hookline.subscribe(
        topic=topic, url=receiver.url("/hdr"), condition="headers['region'] == 'eu'"
    )
    await hookline.publish(topic, {"priority": "low"}, headers={"region": "us"})
    await hookline.publish(topic, {"priority": "high"}, headers={"region": "eu"})
    await hookline.publish(topic, {"no_priority": True}, headers={"region": "eu"})
    [high] = await receiver.wait_for(1, "/high")
    assert high.json()["data"] == {"priority": "high"}
    await receiver.wait_for(2, "/hdr")
    # The message without `priority` cannot be evaluated: dead-lettered, not dropped.
    await eventually(lambda: hookline.dlq_count(topic))
    entries = (await hookline.client.get(f"/v1/topics/{topic}/dlq")).json()["entries"]
    [entry] = entries
    assert entry["data"] == {"no_priority": True}
    assert entry["last_error"]["reason"] == "condition_error"
    assert len(receiver.requests("/high")) == 1


async def test_fixed_retries_then_dlq(hookline: Hookline, receiver: Receiver) -> None:
    topic = unique("fixed")
    receiver.default("/hook", Reply(status=500, body=b"database is down"))
    await hookline.subscribe(
        topic=topic,
        url=receiver.url(),
        retry={"max_retries": 2, "retry_delay_ms": 60, "backoff": "fixed", "jitter": 0},
    )
    published = await hookline.publish(topic, {"x": 1})
    got = await receiver.wait_for(3)
    assert [r.json()["attempt"] for r in got] == [1, 2, 3]
    assert {r.headers["webhook-id"] for r in got} == {published["id"]}
    gaps = [b.at - a.at for a, b in itertools.pairwise(got)]
    assert all(gap >= 0.055 for gap in gaps), gaps
    await eventually(lambda: hookline.dlq_count(topic))
    [entry] = (await hookline.client.get(f"/v1/topics/{topic}/dlq")).json()["entries"]
    assert entry["attempts"] == 3
    assert entry["message_id"] == published["id"]
    assert entry["last_error"] == {
        "reason": "http_error",
        "status": 500,
        "body_excerpt": "database is down",
    }
    assert len(receiver.requests()) == 3


async def test_exponential_backoff_doubles(hookline: Hookline, receiver: Receiver) -> None:
    topic = unique("expo")
    receiver.script("/hook", Reply(503), Reply(503), Reply(503), Reply(200))
    await hookline.subscribe(
        topic=topic,
        url=receiver.url(),
        retry={"max_retries": 3, "retry_delay_ms": 100, "backoff": "exponential", "jitter": 0},
    )
    await hookline.publish(topic, "x")
    got = await receiver.wait_for(4)
    gaps = [b.at - a.at for a, b in itertools.pairwise(got)]
    for gap, expected in zip(gaps, (0.1, 0.2, 0.4), strict=True):
        assert expected * 0.95 <= gap <= expected + 0.35, gaps
    assert await hookline.dlq_count(topic) == 0


async def test_retry_after_is_honoured_and_capped(hookline: Hookline, receiver: Receiver) -> None:
    topic = unique("throttled")
    receiver.script("/hook", Reply(429, headers={"Retry-After": "1"}), Reply(200))
    receiver.script("/capped", Reply(503, headers={"Retry-After": "3600"}), Reply(200))
    await hookline.subscribe(
        topic=topic, url=receiver.url(), retry={"retry_delay_ms": 10, "jitter": 0}
    )
    await hookline.subscribe(
        topic=topic,
        url=receiver.url("/capped"),
        retry={"retry_delay_ms": 10, "max_delay_ms": 300, "jitter": 0},
    )
    await hookline.publish(topic, "x")
    first, second = await receiver.wait_for(2, "/hook")
    assert second.at - first.at >= 0.95
    capped = await receiver.wait_for(2, "/capped")
    assert 0.28 <= capped[1].at - capped[0].at < 2.0


async def test_gone_dead_letters_at_once(hookline: Hookline, receiver: Receiver) -> None:
    topic = unique("gone")
    receiver.default("/hook", Reply(410, body=b"unsubscribed"))
    await hookline.subscribe(topic=topic, url=receiver.url(), retry={"max_retries": 5})
    await hookline.publish(topic, "x")
    await eventually(lambda: hookline.dlq_count(topic))
    [entry] = (await hookline.client.get(f"/v1/topics/{topic}/dlq")).json()["entries"]
    assert entry["attempts"] == 1
    assert entry["last_error"]["status"] == 410
    assert entry["last_error"]["reason"] == "gone"
    assert len(receiver.requests()) == 1


async def test_redirects_are_failures(hookline: Hookline, receiver: Receiver) -> None:
    topic = unique("redirect")
    receiver.default("/hook", Reply(302, headers={"Location": receiver.url("/elsewhere")}))
    await hookline.subscribe(topic=topic, url=receiver.url(), retry={"max_retries": 0})
    await hookline.publish(topic, "x")
    await eventually(lambda: hookline.dlq_count(topic))
    [entry] = (await hookline.client.get(f"/v1/topics/{topic}/dlq")).json()["entries"]
    assert entry["last_error"]["reason"] == "redirect_not_followed"
    assert receiver.requests("/elsewhere") == []


async def test_timeout_counts_as_failure(hookline: Hookline, receiver: Receiver) -> None:
    topic = unique("slow")
    receiver.script("/hook", Reply(delay_s=1.0), Reply(200))
    await hookline.subscribe(topic=topic, url=receiver.url(), timeout_ms=200)
    await hookline.publish(topic, "x")
    first, second = await receiver.wait_for(2)
    assert second.json()["attempt"] == 2
    assert second.at - first.at < 0.9


async def test_connection_refused_dead_letters(hookline: Hookline) -> None:
    topic = unique("refused")
    await hookline.subscribe(
        topic=topic, url="http://127.0.0.1:9/nothing-listens", retry={"max_retries": 1}
    )
    await hookline.publish(topic, "x")
    await eventually(lambda: hookline.dlq_count(topic), within_s=15)
    [entry] = (await hookline.client.get(f"/v1/topics/{topic}/dlq")).json()["entries"]
    assert entry["last_error"]["reason"] == "connection_error"
    assert entry["attempts"] == 2


async def test_dead_letter_topic_subscribers_get_the_original(
    hookline: Hookline, receiver: Receiver
) -> None:
    topic, failed_topic = unique("emails.send"), unique("emails.failed")
    receiver.default("/send", Reply(500))
    sub = await hookline.subscribe(
        topic=topic,
        url=receiver.url("/send"),
        metadata={
            "infrastructure": {
                "queue": {"max_retries": 1, "retry_delay_ms": 20, "dead_letter_topic": failed_topic}
            }
        },
    )
    assert sub["retry"]["max_retries"] == 1
    assert sub["dead_letter_topic"] == failed_topic
    await hookline.subscribe(topic=failed_topic, url=receiver.url("/failed"))
    await hookline.subscribe(topic=failed_topic, url=receiver.url("/failed-data"), payload="data")
    await hookline.publish(topic, {"to": "a@example.com"})
    [got] = await receiver.wait_for(1, "/failed")
    body = got.json()
    assert body["topic"] == failed_topic
    assert body["data"] == {"to": "a@example.com"}
    assert body["dead_letter"]["source_topic"] == topic
    assert body["dead_letter"]["subscription_id"] == sub["id"]
    assert body["dead_letter"]["attempts"] == 2
    assert body["dead_letter"]["last_error"]["status"] == 500
    [bare] = await receiver.wait_for(1, "/failed-data")
    assert bare.json() == {"to": "a@example.com"}
    await eventually(lambda: hookline.dlq_count(topic))


async def test_dlq_list_redrive_only_to_the_failing_subscription_and_purge(
    hookline: Hookline, receiver: Receiver
) -> None:
    topic = unique("dlq")
    receiver.default("/bad", Reply(500))
    bad = await hookline.subscribe(topic=topic, url=receiver.url("/bad"), retry={"max_retries": 0})
    good = await hookline.subscribe(topic=topic, url=receiver.url("/good"))
    for i in range(3):
        await hookline.publish(topic, {"i": i})
    await receiver.wait_for(3, "/good")
    await eventually(lambda: _count_is(hookline, topic, 3))
    assert await hookline.dlq_count(topic, subscription=bad["id"]) == 3
    assert await hookline.dlq_count(topic, subscription=good["id"]) == 0

    page = (await hookline.client.get(f"/v1/topics/{topic}/dlq", params={"limit": 2})).json()
    assert len(page["entries"]) == 2
    assert page["next_cursor"]
    rest = (
        await hookline.client.get(
            f"/v1/topics/{topic}/dlq", params={"limit": 2, "cursor": page["next_cursor"]}
        )
    ).json()
    entries = page["entries"] + rest["entries"]
    # In the order they failed: the three attempts were in flight together, so any order.
    assert sorted(e["data"]["i"] for e in entries) == [0, 1, 2]
    assert rest["next_cursor"] is None
    assert {e["subscription_id"] for e in entries} == {bad["id"]}

    receiver.default("/bad", Reply(200))
    redriven = await hookline.client.post(
        f"/v1/topics/{topic}/dlq/redrive", json={"ids": [entries[0]["id"]]}
    )
    assert redriven.json() == {"redriven": 1}
    await eventually(lambda: len(receiver.requests("/bad")) == 4)
    last = receiver.requests("/bad")[-1].json()
    assert last["data"] == entries[0]["data"]
    assert last["attempt"] == 1
    assert await hookline.dlq_count(topic) == 2

    purged = await hookline.client.delete(
        f"/v1/topics/{topic}/dlq", params={"subscription": bad["id"]}
    )
    assert purged.json() == {"purged": 2}
    assert await hookline.dlq_count(topic) == 0
    assert len(receiver.requests("/good")) == 3


async def _count_is(hookline: Hookline, topic: str, expected: int) -> bool:
    return await hookline.dlq_count(topic) == expected


async def test_idempotent_publish(hookline: Hookline, receiver: Receiver) -> None:
    topic = unique("idem")
    await hookline.subscribe(topic=topic, url=receiver.url())
    headers = {"Idempotency-Key": "order-42"}
    first = await hookline.client.post(
        f"/v1/topics/{topic}/messages", json={"data": 1}, headers=headers
    )
    second = await hookline.client.post(
        f"/v1/topics/{topic}/messages", json={"data": 2}, headers=headers
    )
    assert first.status_code == second.status_code == 202
    assert first.json()["duplicate"] is False
    assert second.json() == {"id": first.json()["id"], "topic": topic, "duplicate": True}
    await hookline.publish(topic, "marker")
    got = await receiver.wait_for(2)
    assert [r.json()["data"] for r in got] == [1, "marker"]


async def test_batch_publish(hookline: Hookline, receiver: Receiver) -> None:
    topic = unique("batch")
    await hookline.subscribe(topic=topic, url=receiver.url())
    response = await hookline.client.post(
        f"/v1/topics/{topic}/messages/batch",
        json={
            "messages": [
                {"data": {"n": 0}, "idempotency_key": "k"},
                {"data": {"n": 1}},
                {"data": {"n": 2}, "idempotency_key": "k"},
            ]
        },
    )
    assert response.status_code == 202, response.text
    results = response.json()["results"]
    assert [r["duplicate"] for r in results] == [False, False, True]
    assert results[2]["id"] == results[0]["id"]
    got = await receiver.wait_for(2)
    assert sorted(r.json()["data"]["n"] for r in got) == [0, 1]


async def test_delayed_publish(hookline: Hookline, receiver: Receiver) -> None:
    topic = unique("delayed")
    await hookline.subscribe(topic=topic, url=receiver.url())
    published_at = time.monotonic()
    await hookline.publish(topic, "later", delay_ms=500)
    await hookline.publish(topic, "now")
    got = {r.json()["data"]: r.at for r in await receiver.wait_for(2)}
    assert got["later"] - published_at >= 0.5  # never before its delay, however busy the machine
    assert got["now"] < got["later"]


async def test_pause_holds_messages_until_resume(hookline: Hookline, receiver: Receiver) -> None:
    topic = unique("paused")
    sub = await hookline.subscribe(topic=topic, url=receiver.url())
    paused = await hookline.client.post(f"/v1/subscriptions/{sub['id']}/pause")
    assert paused.json()["paused"] is True
    await eventually(lambda: sub["id"] not in hookline.runtime.dispatcher._workers)
    await hookline.publish(topic, "waiting")

    async def backlog_is_one() -> bool:
        topic_info = (await hookline.client.get(f"/v1/topics/{topic}")).json()
        return topic_info["backlog"] == 1

    await eventually(backlog_is_one)
    assert receiver.requests() == []
    resumed = await hookline.client.post(f"/v1/subscriptions/{sub['id']}/resume")
    assert resumed.json()["paused"] is False
    [got] = await receiver.wait_for(1)
    assert got.json()["data"] == "waiting"


async def test_a_pause_answered_means_no_new_attempt_starts(
    hookline: Hookline, receiver: Receiver
) -> None:
    topic = unique("pause-then-redrive")
    receiver.default("/hook", Reply(500))
    sub = await hookline.subscribe(topic=topic, url=receiver.url(), retry={"max_retries": 0})
    await hookline.publish(topic, "dead")
    await eventually(lambda: hookline.dlq_count(topic))
    paused = await hookline.client.post(f"/v1/subscriptions/{sub['id']}/pause")
    assert paused.status_code == 200
    assert sub["id"] not in hookline.runtime.dispatcher._workers  # halted before the answer
    redriven = await hookline.client.post("/v1/functions/queue.redrive_dlq", json={"topic": topic})
    assert redriven.json() == 1

    async def backlog_is_one() -> bool:
        topic_info = (await hookline.client.get(f"/v1/topics/{topic}")).json()
        return bool(topic_info["backlog"] == 1)

    await eventually(backlog_is_one)
    assert await hookline.dlq_count(topic) == 0
    assert len(receiver.requests()) == 1  # the redriven message waits for the resume


async def test_functions_have_the_engine_shapes(hookline: Hookline, receiver: Receiver) -> None:
    topic = unique("fn")
    receiver.default("/hook", Reply(500))
    await hookline.subscribe(topic=topic, url=receiver.url(), retry={"max_retries": 0})
    enqueued = await hookline.client.post(
        "/v1/functions/queue.enqueue", json={"topic": topic, "data": {"a": 1}}
    )
    assert enqueued.status_code == 200
    assert enqueued.json() is None
    await eventually(lambda: hookline.dlq_count(topic))
    count = await hookline.client.post("/v1/functions/queue.dlq_count", json={"topic": topic})
    assert count.json() == 1
    receiver.default("/hook", Reply(200))
    redriven = await hookline.client.post("/v1/functions/queue.redrive_dlq", json={"topic": topic})
    assert redriven.json() == 1
    await eventually(lambda: len(receiver.requests()) == 2)
    assert receiver.requests()[-1].json()["data"] == {"a": 1}
    engine = await hookline.client.post("/v1/enqueue", json={"topic": topic, "data": "e"})
    assert engine.status_code == 202
    assert engine.json()["topic"] == topic


async def test_topic_listing_shows_stats(hookline: Hookline, receiver: Receiver) -> None:
    topic = unique("listing")
    receiver.default("/hook", Reply(500))
    sub = await hookline.subscribe(topic=topic, url=receiver.url(), retry={"max_retries": 0})
    await hookline.publish(topic, 1)
    await eventually(lambda: hookline.dlq_count(topic))
    info = (await hookline.client.get(f"/v1/topics/{topic}")).json()
    assert info["dlq_count"] == 1
    assert info["subscriptions"][0]["id"] == sub["id"]
    assert info["subscriptions"][0]["dlq"] == 1
    listed = (await hookline.client.get("/v1/topics")).json()["topics"]
    assert topic in [t["topic"] for t in listed]


def test_secret_bytes_are_base64() -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 24).decode()
    assert Webhook(secret)  # the package accepts our secret format


async def test_functions_accept_json_sent_without_a_content_type(hookline: Hookline) -> None:
    topic = unique("curl")
    response = await hookline.client.post(
        "/v1/functions/queue.dlq_count",
        content=f'{{"topic":"{topic}"}}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == 0
