"""Ordering keys end to end on every adapter: per-key order under failures, no
head-of-line blocking across keys, dead letters moving a key on, validation."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.backends import unique
from tests.harness import Hookline, eventually
from tests.receiver import Receiver, Reply
from tests.semantics.ordering_checks import (
    assert_in_publish_order,
    assert_one_at_a_time,
    first_successes,
    key_seq,
    keyed_batches,
)

FAST_RETRY = {"max_retries": 100, "retry_delay_ms": 20, "backoff": "fixed", "jitter": 0}


async def _publish_batches(hookline: Hookline, topic: str, batches: list[list[Any]]) -> None:
    for batch in batches:
        response = await hookline.client.post(
            f"/v1/topics/{topic}/messages/batch", json={"messages": batch}
        )
        assert response.status_code == 202, response.text


def _delivered(receiver: Receiver) -> int:
    return sum(len(v) for v in first_successes(receiver.requests("/hook")).values())


async def test_each_key_in_order_under_random_failures(
    hookline: Hookline, receiver: Receiver
) -> None:
    """20 keys x 50 messages, 20 % of attempts failing at random: every key's first
    successful deliveries come in publish order, one message of a key at a time.
    """
    topic = unique("orders")
    receiver.fail_randomly("/hook", 0.2)
    await hookline.subscribe(
        topic=topic, url=receiver.url(), ordering="key", max_in_flight=10, retry=FAST_RETRY
    )
    await _publish_batches(hookline, topic, keyed_batches(20, 50))
    await eventually(lambda: _delivered(receiver) == 1000, within_s=60)
    requests = receiver.requests("/hook")
    assert_in_publish_order(requests, 20, 50)
    assert_one_at_a_time(requests)
    failures = sum(1 for r in requests if r.status != 200)
    assert failures > 100  # the failures really happened (about 250 expected)


async def test_a_failing_key_holds_back_only_itself(hookline: Hookline, receiver: Receiver) -> None:
    """One key's first message fails for 5 s; the 19 others (20 messages each) finish long
    before it, at full concurrency.
    """
    topic = unique("hol")
    stuck_until = float("inf")

    def decide(body: bytes) -> Reply | None:
        key, seq = key_seq_of(body)
        if key == "k0" and seq == 0 and time.monotonic() < stuck_until:
            return Reply(503)
        return Reply(200, delay_s=0.005)

    receiver.rule("/hook", decide)
    await hookline.subscribe(
        topic=topic,
        url=receiver.url(),
        ordering="key",
        max_in_flight=8,
        retry={**FAST_RETRY, "retry_delay_ms": 100},  # 100 retries outlast the 5 s
    )
    stuck_until = time.monotonic() + 5.0
    await _publish_batches(hookline, topic, keyed_batches(20, 20))
    await eventually(lambda: _delivered(receiver) == 400, within_s=30)
    requests = receiver.requests("/hook")
    assert_in_publish_order(requests, 20, 20)
    done_at: dict[str, float] = {}
    for request in requests:
        if request.status == 200:
            done_at[key_seq(request)[0]] = request.at
    others = max(at for key, at in done_at.items() if key != "k0")
    k0_first = min(r.at for r in requests if key_seq(r) == ("k0", 0) and r.status == 200)
    # 380 messages of the other keys take well under 3 s even on a loaded machine
    assert others < stuck_until - 2.0, "the other keys waited for the failing one"
    assert k0_first >= stuck_until
    # k0's other messages never went out while its first was failing
    assert all(key_seq(r)[1] == 0 for r in requests if key_seq(r)[0] == "k0" and r.at < k0_first)


def key_seq_of(body: bytes) -> tuple[str, int]:
    data = json.loads(body)["data"]
    return str(data["key"]), int(data["seq"])


async def test_a_dead_letter_lets_its_key_move_on(hookline: Hookline, receiver: Receiver) -> None:
    """A key's message that is dead-lettered (gone, or expired while its key was busy) no
    longer holds the key: the next message goes out; the DLQ entry carries the key.
    """
    topic = unique("moveon")

    def decide(body: bytes) -> Reply | None:
        _key, seq = key_seq_of(body)
        if seq == 1:
            return Reply(410)  # dead-letter at once
        if seq == 3:
            return Reply(500, delay_s=0.3)  # holds the key while seq 4 expires
        return None

    receiver.rule("/hook", decide)
    sub = await hookline.subscribe(
        topic=topic,
        url=receiver.url(),
        ordering="key",
        retry={"max_retries": 1, "retry_delay_ms": 20, "backoff": "fixed", "jitter": 0},
    )
    messages: list[dict[str, Any]] = [
        {"data": {"key": "a", "seq": n}, "ordering_key": "a"} for n in range(6)
    ]
    messages[4]["ttl_ms"] = 300
    response = await hookline.client.post(
        f"/v1/topics/{topic}/messages/batch", json={"messages": messages}
    )
    assert response.status_code == 202, response.text
    ids = [r["id"] for r in response.json()["results"]]
    await eventually(lambda: 5 in first_successes(receiver.requests("/hook")).get("a", []))
    assert first_successes(receiver.requests("/hook"))["a"] == [0, 2, 5]
    assert_one_at_a_time(receiver.requests("/hook"))

    async def three_dead() -> bool:
        return await hookline.dlq_count(topic) == 3

    await eventually(three_dead)
    entries = (await hookline.client.get(f"/v1/topics/{topic}/dlq")).json()["entries"]
    by_message = {e["message_id"]: e for e in entries}
    assert set(by_message) == {ids[1], ids[3], ids[4]}
    assert all(e["ordering_key"] == "a" for e in entries)
    assert by_message[ids[1]]["last_error"]["status"] == 410
    assert by_message[ids[4]]["last_error"]["reason"] == "expired"
    looked_up = await hookline.client.get(f"/v1/messages/{ids[2]}")
    assert looked_up.status_code == 200, looked_up.text
    assert looked_up.json()["ordering_key"] == "a"
    assert sub["ordering"] == "key"


async def test_unkeyed_messages_flow_beside_keyed_ones(
    hookline: Hookline, receiver: Receiver
) -> None:
    """Messages without a key are unordered: a busy key does not hold them back."""
    topic = unique("mixed")
    stuck_until = time.monotonic() + 1.5

    def decide(body: bytes) -> Reply | None:
        data = json.loads(body)["data"]
        if data.get("key") == "slow" and time.monotonic() < stuck_until:
            return Reply(500)
        return None

    receiver.rule("/hook", decide)
    await hookline.subscribe(topic=topic, url=receiver.url(), ordering="key", retry=FAST_RETRY)
    batch = [{"data": {"key": "slow", "seq": n}, "ordering_key": "slow"} for n in range(3)]
    batch += [{"data": {"free": n}} for n in range(30)]
    response = await hookline.client.post(
        f"/v1/topics/{topic}/messages/batch", json={"messages": batch}
    )
    assert response.status_code == 202

    def free_done() -> bool:
        got = {json.loads(r.body)["data"].get("free") for r in receiver.requests("/hook")}
        return set(range(30)) <= got

    await eventually(free_done)
    assert time.monotonic() < stuck_until
    await eventually(lambda: len(first_successes(receiver.requests("/hook")).get("slow", [])) == 3)
    assert first_successes(receiver.requests("/hook"))["slow"] == [0, 1, 2]


async def test_ordering_fields_are_validated_and_shown(hookline: Hookline) -> None:
    topic = unique("valid")
    client = hookline.client
    for bad in ("", "x" * 256):
        shapes = [
            (f"/v1/topics/{topic}/messages", {"data": 1, "ordering_key": bad}),
            (
                f"/v1/topics/{topic}/messages/batch",
                {"messages": [{"data": 1, "ordering_key": bad}]},
            ),
            ("/v1/enqueue", {"topic": topic, "data": 1, "ordering_key": bad}),
            ("/v1/functions/queue.enqueue", {"topic": topic, "data": 1, "ordering_key": bad}),
        ]
        for path, body in shapes:
            response = await client.post(path, json=body)
            assert response.status_code == 422, (path, bad[:5], response.text)
    for path, body in [
        (f"/v1/topics/{topic}/messages", {"data": 1, "ordering_key": "x" * 255}),
        ("/v1/enqueue", {"topic": topic, "data": 1, "ordering_key": "k"}),
    ]:
        assert (await client.post(path, json=body)).status_code == 202
    function = await client.post(
        "/v1/functions/queue.enqueue", json={"topic": topic, "data": 1, "ordering_key": "k"}
    )
    assert function.status_code == 200, function.text
    bad_sub = await client.post(
        "/v1/subscriptions", json={"topic": topic, "url": "http://127.0.0.1:9/h", "ordering": "x"}
    )
    assert bad_sub.status_code == 422
    created = await client.post(
        "/v1/subscriptions", json={"topic": topic, "url": "http://127.0.0.1:9/h", "paused": True}
    )
    assert created.status_code == 201
    sub_id = created.json()["id"]
    assert created.json()["ordering"] == "none"
    patched = await client.patch(f"/v1/subscriptions/{sub_id}", json={"ordering": "key"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["ordering"] == "key"
    assert (await client.get(f"/v1/subscriptions/{sub_id}")).json()["ordering"] == "key"
    listed = (await client.get("/v1/subscriptions", params={"topic": topic})).json()
    assert [s["ordering"] for s in listed["subscriptions"]] == ["key"]
    refused = await client.patch(f"/v1/subscriptions/{sub_id}", json={"ordering": "fifo"})
    assert refused.status_code == 422


async def test_a_pause_mid_retry_hands_the_key_back_in_order(
    hookline: Hookline, receiver: Receiver
) -> None:
    """Paused while a key's message is being retried and later ones wait behind it: they
    are handed back together, and after resume the key goes on in order.
    """
    topic = unique("pausing")
    failing = True

    def decide(body: bytes) -> Reply | None:
        _key, seq = key_seq_of(body)
        return Reply(500) if failing and seq == 3 else None

    receiver.rule("/hook", decide)
    sub = await hookline.subscribe(
        topic=topic, url=receiver.url(), ordering="key", retry=FAST_RETRY
    )
    await _publish_batches(hookline, topic, keyed_batches(2, 10))
    await receiver.wait_for(8 + 3, "/hook")  # both keys stuck at seq 3, retrying
    await hookline.client.post(f"/v1/subscriptions/{sub['id']}/pause")
    await eventually(lambda: sub["id"] not in hookline.runtime.dispatcher._workers)
    failing = False
    await hookline.client.post(f"/v1/subscriptions/{sub['id']}/resume")
    await eventually(lambda: _delivered(receiver) == 20)
    requests = receiver.requests("/hook")
    assert_in_publish_order(requests, 2, 10)
    assert_one_at_a_time(requests)


async def test_auto_pause_parks_keys_in_order_and_resend_still_works(
    hookline: Hookline, receiver: Receiver
) -> None:
    """The automatic pause hands every held message back (each key whole, in order); on
    resume each key is delivered in order; a resend of a keyed message is delivered again.
    """
    topic = unique("parked")
    down = True

    def decide(body: bytes) -> Reply | None:
        return Reply(500) if down else None

    receiver.rule("/hook", decide)
    sub = await hookline.subscribe(
        topic=topic,
        url=receiver.url(),
        ordering="key",
        retry=FAST_RETRY,
        auto_pause={"after_consecutive_failures": 5, "after_failing_for_ms": 0},
    )
    batches = keyed_batches(3, 5)
    await _publish_batches(hookline, topic, batches)

    async def paused() -> bool:
        shown = (await hookline.client.get(f"/v1/subscriptions/{sub['id']}")).json()
        return bool(shown["paused"])

    await eventually(paused)
    await eventually(lambda: sub["id"] not in hookline.runtime.dispatcher._workers)
    assert await hookline.dlq_count(topic) == 0
    down = False
    await hookline.client.post(f"/v1/subscriptions/{sub['id']}/resume")
    await eventually(lambda: _delivered(receiver) == 15)
    assert_in_publish_order(receiver.requests("/hook"), 3, 5)
    assert_one_at_a_time(receiver.requests("/hook"))
    ids = [
        r.json()["id"] for r in receiver.requests("/hook") if r.status == 200
    ]  # the first delivered
    before = len(receiver.requests("/hook"))
    resent = await hookline.client.post(
        f"/v1/messages/{ids[0]}/resend", json={"subscription": sub["id"]}
    )
    assert resent.status_code == 202, resent.text
    [again] = (await receiver.wait_for(before + 1, "/hook"))[before:]
    assert again.json()["id"] == ids[0]
    assert again.json()["ordering_key"] == again.json()["data"]["key"]
