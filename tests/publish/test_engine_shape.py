"""Items 7, 8 and 9 of issue 9: trace context on every message, the engine's message shape
``{topic, data, traceparent?, baggage?}``, and ``Idempotency-Key`` on ``queue.enqueue``."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.core import tracing
from tests.harness import Hookline, eventually, running_hookline
from tests.receiver import Receiver

W3C = re.compile(r"^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-01$")
BODY_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
BODY_PARENT = f"00-{BODY_TRACE}-00f067aa0ba902b7-01"
HEADER_TRACE = "0af7651916cd43dd8448eb211c80319c"
HEADER_PARENT = f"00-{HEADER_TRACE}-b7ad6b7169203331-01"


@pytest.fixture
async def hookline() -> AsyncIterator[Hookline]:
    async with running_hookline("builtin") as running:
        yield running


@pytest.fixture
def no_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    """As a process without an exporter: no tracer provider (another test may install one)."""
    monkeypatch.setattr(tracing, "tracing_enabled", lambda: False)


def trace_id(traceparent: str) -> str:
    return traceparent.split("-")[1]


async def settled(hookline: Hookline, topic: str) -> None:
    """Everything published to ``topic`` was delivered and acked."""

    async def idle() -> bool:
        info = (await hookline.client.get(f"/v1/topics/{topic}")).json()
        return bool(info["backlog"] == 0 and info["in_flight"] == 0 and info["scheduled"] == 0)

    await eventually(idle)


# -- item 7: a traceparent on every message ------------------------------------------


@pytest.mark.usefixtures("no_sdk")
async def test_a_message_without_trace_context_starts_a_new_trace(
    hookline: Hookline, receiver: Receiver
) -> None:
    await hookline.subscribe(topic="untraced", url=receiver.url())
    await hookline.publish("untraced", 1)
    await hookline.client.post("/v1/enqueue", json={"topic": "untraced", "data": 2})
    await hookline.client.post("/v1/functions/queue.enqueue", json={"topic": "untraced", "data": 3})
    await hookline.client.post(
        "/v1/topics/untraced/messages/batch", json={"messages": [{"data": 4}, {"data": 5}]}
    )
    got = await receiver.wait_for(5)
    by_data = {r.json()["data"]: r for r in got}
    for request in got:
        assert W3C.match(request.headers["traceparent"]), request.headers
        assert request.json()["traceparent"] == request.headers["traceparent"]
    # Each publish is its own trace; a batch is one publish.
    traces = {n: trace_id(by_data[n].headers["traceparent"]) for n in by_data}
    assert len({traces[1], traces[2], traces[3], traces[4]}) == 4
    assert traces[4] == traces[5]


@pytest.mark.usefixtures("no_sdk")
async def test_an_invalid_traceparent_header_starts_a_new_trace_and_keeps_baggage(
    hookline: Hookline, receiver: Receiver
) -> None:
    await hookline.subscribe(topic="badtrace", url=receiver.url())
    response = await hookline.client.post(
        "/v1/topics/badtrace/messages",
        json={"data": 1},
        headers={"traceparent": "00-" + "0" * 32 + "-b7ad6b7169203331-01", "baggage": "k=v"},
    )
    assert response.status_code == 202
    [got] = await receiver.wait_for(1)
    assert W3C.match(got.headers["traceparent"])
    assert trace_id(got.headers["traceparent"]) != "0" * 32
    assert got.headers["baggage"] == "k=v"


def test_new_traceparents_are_valid_sampled_and_distinct() -> None:
    made = {tracing.new_traceparent() for _ in range(1000)}
    assert len(made) == 1000
    assert all(W3C.match(t) and tracing.is_valid_traceparent(t) for t in made)


# -- item 8: the engine's message shape -----------------------------------------------


@pytest.mark.usefixtures("no_sdk")
@pytest.mark.parametrize("path", ["/v1/enqueue", "/v1/functions/queue.enqueue"])
async def test_body_trace_context_is_continued(
    hookline: Hookline, receiver: Receiver, path: str
) -> None:
    await hookline.subscribe(topic="shaped", url=receiver.url())
    body: dict[str, Any] = {
        "topic": "shaped",
        "data": {"n": 1},
        "traceparent": BODY_PARENT,
        "baggage": "tenant=acme",
    }
    response = await hookline.client.post(path, json=body)
    assert response.status_code in (200, 202), response.text
    [got] = await receiver.wait_for(1)
    assert got.headers["traceparent"] == BODY_PARENT
    assert got.headers["baggage"] == "tenant=acme"
    assert got.json()["data"] == {"n": 1}


@pytest.mark.usefixtures("no_sdk")
@pytest.mark.parametrize("path", ["/v1/enqueue", "/v1/functions/queue.enqueue"])
async def test_request_headers_win_over_body_fields(
    hookline: Hookline, receiver: Receiver, path: str
) -> None:
    await hookline.subscribe(topic="both", url=receiver.url())
    body = {"topic": "both", "data": 1, "traceparent": BODY_PARENT, "baggage": "from=body"}
    response = await hookline.client.post(
        path, json=body, headers={"traceparent": HEADER_PARENT, "baggage": "from=header"}
    )
    assert response.status_code in (200, 202), response.text
    # Field by field: the header's traceparent wins, the body's baggage fills in.
    response = await hookline.client.post(path, json=body, headers={"traceparent": HEADER_PARENT})
    assert response.status_code in (200, 202), response.text
    first, second = await receiver.wait_for(2)
    assert {trace_id(first.headers["traceparent"]), trace_id(second.headers["traceparent"])} == {
        HEADER_TRACE
    }
    assert sorted(r.headers["baggage"] for r in (first, second)) == ["from=body", "from=header"]


async def test_enqueue_takes_delay_ms(hookline: Hookline, receiver: Receiver) -> None:
    await hookline.subscribe(topic="later", url=receiver.url())
    started = time.monotonic()
    response = await hookline.client.post(
        "/v1/enqueue", json={"topic": "later", "data": 1, "delay_ms": 300}
    )
    assert response.status_code == 202, response.text
    [got] = await receiver.wait_for(1)
    assert got.at - started >= 0.29


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("traceparent", "not-a-traceparent"),
        ("traceparent", "00-" + "0" * 32 + "-b7ad6b7169203331-01"),
        ("traceparent", f"00-{BODY_TRACE}-{'0' * 16}-01"),
        ("traceparent", f"ff-{BODY_TRACE}-00f067aa0ba902b7-01"),
        ("traceparent", BODY_PARENT.upper()),
        ("traceparent", 7),
        ("baggage", "k=v\r\nX-Injected: 1"),
        ("baggage", "x" * 8193),
        ("delay_ms", -1),
    ],
)
@pytest.mark.parametrize("path", ["/v1/enqueue", "/v1/functions/queue.enqueue"])
async def test_invalid_body_trace_fields_are_422(
    hookline: Hookline, receiver: Receiver, path: str, field: str, value: object
) -> None:
    await hookline.subscribe(topic="invalid", url=receiver.url())
    response = await hookline.client.post(path, json={"topic": "invalid", "data": 1, field: value})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["message"]
    info = (await hookline.client.get("/v1/topics/invalid")).json()
    assert info["backlog"] + info["in_flight"] + info["scheduled"] == 0
    assert receiver.requests() == []


# -- item 9: Idempotency-Key on queue.enqueue -----------------------------------------


async def test_queue_enqueue_honours_idempotency_key(
    hookline: Hookline, receiver: Receiver
) -> None:
    await hookline.subscribe(topic="once", url=receiver.url())
    key = {"Idempotency-Key": "order-42"}
    for _ in range(2):
        response = await hookline.client.post(
            "/v1/functions/queue.enqueue", json={"topic": "once", "data": "x"}, headers=key
        )
        assert response.status_code == 200, response.text
        assert response.json() is None
    # The key is the same one /v1/enqueue and topic publish see.
    repeat = await hookline.client.post(
        "/v1/enqueue", json={"topic": "once", "data": "x"}, headers=key
    )
    assert repeat.json()["duplicate"] is True
    await receiver.wait_for(1)
    await settled(hookline, "once")
    assert len(receiver.requests()) == 1
    metrics = (await hookline.client.get("/metrics")).text
    assert 'hookline_messages_duplicate_total{topic="once"} 2.0' in metrics


async def test_queue_enqueue_refuses_an_empty_idempotency_key(hookline: Hookline) -> None:
    response = await hookline.client.post(
        "/v1/functions/queue.enqueue",
        json={"topic": "once", "data": "x"},
        headers={"Idempotency-Key": ""},
    )
    assert response.status_code == 422, response.text
