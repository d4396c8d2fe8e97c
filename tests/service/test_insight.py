"""Issue 13, end to end on every adapter: message lookup, attempt log, health, auto-pause
with parked messages and events, resume, resend, retention (real receiver, real storage).
"""

from __future__ import annotations

from typing import Any

from tests.backends import unique
from tests.harness import Hookline, eventually, running_hookline
from tests.receiver import Receiver, Reply


async def lookup(hookline: Hookline, message_id: str) -> dict[str, Any]:
    response = await hookline.client.get(f"/v1/messages/{message_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def state_of(hookline: Hookline, message_id: str, sub_id: str) -> str | None:
    response = await hookline.client.get(f"/v1/messages/{message_id}")
    if response.status_code != 200:
        return None
    for delivery in response.json()["deliveries"]:
        if delivery["subscription_id"] == sub_id:
            return str(delivery["state"])
    return None


async def reaches(hookline: Hookline, message_id: str, sub_id: str, state: str) -> None:
    async def check() -> bool:
        return await state_of(hookline, message_id, sub_id) == state

    await eventually(check)


async def test_states_and_attempts_delivered_retried_filtered_dead(
    hookline: Hookline, receiver: Receiver
) -> None:
    topic = unique("orders")
    ok = await hookline.subscribe(topic=topic, url=receiver.url("/ok"))
    flaky = await hookline.subscribe(topic=topic, url=receiver.url("/flaky"))
    picky = await hookline.subscribe(topic=topic, url=receiver.url("/picky"), condition="false")
    dead = await hookline.subscribe(
        topic=topic, url=receiver.url("/dead"), retry={"max_retries": 1, "retry_delay_ms": 20}
    )
    receiver.script("/flaky", Reply(500, body=b"boom Authorization: Bearer sekrit"))
    receiver.default("/dead", Reply(503, body=b"down"))
    published = await hookline.publish(topic, {"n": 1}, headers={"x-kind": "test"})
    message_id = published["id"]
    await reaches(hookline, message_id, ok["id"], "delivered")
    await reaches(hookline, message_id, flaky["id"], "delivered")
    await reaches(hookline, message_id, picky["id"], "filtered")
    await reaches(hookline, message_id, dead["id"], "dead_lettered")
    body = await lookup(hookline, message_id)
    assert body["topic"] == topic
    assert body["data"] == {"n": 1}
    assert body["headers"] == {"x-kind": "test"}
    assert isinstance(body["published_at"], int)
    by_sub = {d["subscription_id"]: d for d in body["deliveries"]}
    [first] = by_sub[ok["id"]]["attempts"]
    assert (first["attempt"], first["status"], first["outcome"]) == (1, 200, "succeeded")
    assert first["duration_ms"] >= 0
    flaky_attempts = by_sub[flaky["id"]]["attempts"]
    assert [a["status"] for a in flaky_attempts] == [500, 200]
    assert flaky_attempts[0]["next_step"] == "scheduled"
    assert flaky_attempts[0]["next_attempt_at"] is not None
    assert "boom" in flaky_attempts[0]["response_excerpt"]
    assert by_sub[picky["id"]]["attempts"] == []
    dead_attempts = by_sub[dead["id"]]["attempts"]
    assert [(a["attempt"], a["status"]) for a in dead_attempts] == [(1, 503), (2, 503)]
    assert dead_attempts[-1]["next_step"] == "dead_lettered"


async def test_unknown_message_is_a_clear_404(hookline: Hookline) -> None:
    response = await hookline.client.get("/v1/messages/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_attempt_log_newest_first_filtered_and_paged_and_health(
    hookline: Hookline, receiver: Receiver
) -> None:
    topic = unique("log")
    # One at a time: the log is newest first by the time each attempt was recorded.
    sub = await hookline.subscribe(topic=topic, url=receiver.url("/log"), max_in_flight=1)
    receiver.script("/log", Reply(500), Reply(500))
    for n in range(4):
        await hookline.publish(topic, {"n": n})
    await receiver.wait_for(6, "/log")

    async def all_logged() -> bool:
        page = await hookline.client.get(f"/v1/subscriptions/{sub['id']}/attempts")
        return len(page.json()["attempts"]) == 6

    await eventually(all_logged)
    page = (
        await hookline.client.get(f"/v1/subscriptions/{sub['id']}/attempts", params={"limit": 4})
    ).json()
    times = [a["started_at"] for a in page["attempts"]]
    assert times == sorted(times, reverse=True)
    assert page["next_cursor"]
    rest = (
        await hookline.client.get(
            f"/v1/subscriptions/{sub['id']}/attempts",
            params={"limit": 4, "cursor": page["next_cursor"]},
        )
    ).json()
    assert len(rest["attempts"]) == 2
    assert rest["next_cursor"] is None
    failed = (
        await hookline.client.get(
            f"/v1/subscriptions/{sub['id']}/attempts", params={"outcome": "failed"}
        )
    ).json()["attempts"]
    assert [a["status"] for a in failed] == [500, 500]
    bad = await hookline.client.get(
        f"/v1/subscriptions/{sub['id']}/attempts", params={"outcome": "meh"}
    )
    assert bad.status_code == 422
    shown = (await hookline.client.get(f"/v1/subscriptions/{sub['id']}")).json()
    health = shown["health"]
    assert health["attempts_5m"] == 6
    assert health["success_rate_5m"] == 4 / 6
    assert health["consecutive_failures"] == 0
    assert health["last_failure"]["status"] == 500
    assert health["last_success"]["status"] == 200
    assert health["p50_duration_ms"] is not None
    listed = (await hookline.client.get("/v1/subscriptions", params={"topic": topic})).json()
    assert listed["subscriptions"][0]["health"]["attempts_1h"] == 6


async def test_auto_pause_parks_emits_event_and_resume_delivers_all(
    hookline: Hookline, receiver: Receiver
) -> None:
    topic = unique("fragile")
    events = await hookline.subscribe(
        topic="hookline.subscription.paused", url=receiver.url("/events")
    )
    assert events["id"]
    sub = await hookline.subscribe(
        topic=topic,
        url=receiver.url("/down"),
        max_in_flight=1,
        retry={"max_retries": 50, "retry_delay_ms": 20, "backoff": "fixed", "jitter": 0},
        auto_pause={"after_consecutive_failures": 3, "after_failing_for_ms": 0},
    )
    receiver.default("/down", Reply(500, body=b"still down"))
    n = 5
    ids = [(await hookline.publish(topic, {"n": i}))["id"] for i in range(n)]
    [event] = await receiver.wait_for(1, "/events")
    data = event.json()["data"]
    assert data["subscription_id"] == sub["id"]
    assert data["reason"].startswith("auto_pause")
    assert data["last_error"]["status"] == 500

    async def paused() -> bool:
        shown = (await hookline.client.get(f"/v1/subscriptions/{sub['id']}")).json()
        return bool(shown["paused"])

    await eventually(paused)
    for message_id in ids:
        await reaches(hookline, message_id, sub["id"], "parked")
    assert await hookline.dlq_count(topic) == 0
    receiver.default("/down", Reply(200))
    seen_before = len(receiver.requests("/down"))
    resumed = await hookline.client.post(f"/v1/subscriptions/{sub['id']}/resume")
    assert resumed.status_code == 200
    for message_id in ids:
        await reaches(hookline, message_id, sub["id"], "delivered")
    delivered = {r.json()["id"] for r in receiver.requests("/down")[seen_before:]}
    assert delivered == set(ids)
    assert await hookline.dlq_count(topic) == 0


async def test_resend_delivers_again_with_the_same_webhook_id(
    hookline: Hookline, receiver: Receiver
) -> None:
    topic = unique("again")
    sub = await hookline.subscribe(topic=topic, url=receiver.url("/again"))
    published = await hookline.publish(topic, {"n": 1})
    await reaches(hookline, published["id"], sub["id"], "delivered")
    response = await hookline.client.post(
        f"/v1/messages/{published['id']}/resend", json={"subscription": sub["id"]}
    )
    assert response.status_code == 202, response.text
    first, second = await receiver.wait_for(2, "/again")
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == published["id"]
    assert second.json()["attempt"] == 1

    async def two_attempts() -> bool:
        body = await lookup(hookline, published["id"])
        return len(body["deliveries"][0]["attempts"]) == 2

    await eventually(two_attempts)
    missing = await hookline.client.post(
        "/v1/messages/nope/resend", json={"subscription": sub["id"]}
    )
    assert missing.status_code == 404
    other = await hookline.client.post(
        f"/v1/messages/{published['id']}/resend", json={"subscription": "no-such-sub"}
    )
    assert other.status_code == 404


async def test_retention_forgets_old_messages(receiver: Receiver) -> None:
    async with running_hookline("builtin", insight={"retention_ms": 1000}) as hookline:
        topic = unique("short")
        sub = await hookline.subscribe(topic=topic, url=receiver.url("/short"))
        published = await hookline.publish(topic, {"n": 1})
        await reaches(hookline, published["id"], sub["id"], "delivered")

        async def forgotten() -> bool:
            response = await hookline.client.get(f"/v1/messages/{published['id']}")
            return response.status_code == 404

        await eventually(forgotten, within_s=10)


async def test_insight_can_be_turned_off(receiver: Receiver) -> None:
    async with running_hookline("builtin", insight={"enabled": False}) as hookline:
        topic = unique("off")
        await hookline.subscribe(topic=topic, url=receiver.url("/off"))
        published = await hookline.publish(topic, {"n": 1})
        await receiver.wait_for(1, "/off")
        response = await hookline.client.get(f"/v1/messages/{published['id']}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "insight_disabled"


async def test_a_pause_or_resume_by_update_is_one_like_any_other(
    hookline: Hookline, receiver: Receiver
) -> None:
    topic = unique("updated")
    paused_events = await hookline.subscribe(
        topic="hookline.subscription.paused", url=receiver.url("/paused")
    )
    resumed_events = await hookline.subscribe(
        topic="hookline.subscription.resumed", url=receiver.url("/resumed")
    )
    assert paused_events["id"]
    assert resumed_events["id"]
    sub = await hookline.subscribe(topic=topic, url=receiver.url("/hook"))
    path = f"/v1/subscriptions/{sub['id']}"
    patched = await hookline.client.patch(path, json={"paused": True})
    assert patched.status_code == 200, patched.text
    assert patched.json()["paused"] is True
    assert patched.json()["paused_reason"] == "manual"
    [event] = await receiver.wait_for(1, "/paused")
    assert event.json()["data"]["subscription_id"] == sub["id"]
    assert event.json()["data"]["reason"] == "manual"
    # A full replacement that does not mention `paused` leaves the subscription paused.
    replaced = await hookline.client.put(path, json={"topic": topic, "url": receiver.url("/new")})
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["paused"] is True
    published = await hookline.publish(topic, {"n": 1})
    await reaches(hookline, published["id"], sub["id"], "parked")
    assert receiver.requests("/new") == []
    resumed = await hookline.client.patch(path, json={"paused": False})
    assert resumed.json()["paused"] is False
    assert resumed.json()["paused_reason"] is None
    [got] = await receiver.wait_for(1, "/new")
    assert got.json()["id"] == published["id"]
    [event] = await receiver.wait_for(1, "/resumed")
    assert event.json()["data"]["subscription_id"] == sub["id"]
