"""Issue 12: the publish routes' fast path answers exactly as the FastAPI routes do.

A body sent as ``application/merge-patch+json`` is JSON to FastAPI but not taken by the fast
path, so the same request can be answered both ways and the answers compared. The fast
path's ``served`` count says which way a request went.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.api.fastpublish import FastPublisher, HooklineApp
from tests.harness import Hookline, running_hookline
from tests.receiver import Receiver

FAST = {"Content-Type": "application/json"}
SLOW = {"Content-Type": "application/merge-patch+json"}
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
BODY_PARENT = "00-11111111111111111111111111111111-2222222222222222-01"

GOOD = {
    "single": ("/v1/topics/fast/messages", b'{"data": {"n": 1}, "headers": {"k": "v"}}'),
    "batch": ("/v1/topics/fast/messages/batch", b'{"messages": [{"data": 1}, {"data": 2}]}'),
    "enqueue": ("/v1/enqueue", b'{"topic": "fast", "data": [1, 2]}'),
    "function": ("/v1/functions/queue.enqueue", b'{"topic": "fast", "data": "x"}'),
}

BAD: dict[str, tuple[str, bytes, dict[str, str]]] = {
    "unknown-field": ("/v1/topics/fast/messages", b'{"data": 1, "nope": 2}', {}),
    "no-data": ("/v1/topics/fast/messages", b"{}", {}),
    "bad-topic": ("/v1/topics/-bad/messages", b'{"data": 1}', {}),
    "delay-over-limit": ("/v1/topics/fast/messages", b'{"data": 1, "delay_ms": 10000000000}', {}),
    "delay-bool": ("/v1/topics/fast/messages", b'{"data": 1, "delay_ms": true}', {}),
    "nan": ("/v1/topics/fast/messages", b'{"data": NaN}', {}),
    "not-json": ("/v1/topics/fast/messages", b'{"data": ', {}),
    "empty-batch": ("/v1/topics/fast/messages/batch", b'{"messages": []}', {}),
    "batch-over-limit": (
        "/v1/topics/fast/messages/batch",
        b'{"messages": [' + b",".join([b'{"data": 1}'] * 3) + b"]}",
        {},
    ),
    "long-key": ("/v1/topics/fast/messages", b'{"data": 1}', {"Idempotency-Key": "k" * 256}),
    "enqueue-bad-traceparent": ("/v1/enqueue", b'{"topic": "fast", "traceparent": "00-x"}', {}),
    "function-not-object": ("/v1/functions/queue.enqueue", b"[1]", {}),
    "topic-with-newline": ("/v1/topics/fast%0A/messages", b'{"data": 1}', {}),
    "enqueue-topic-with-newline": ("/v1/enqueue", b'{"topic": "fast\\n", "data": 1}', {}),
    "header-value-newline": (
        "/v1/topics/fast/messages",
        b'{"data": 1, "headers": {"k": "v\\n"}}',
        {},
    ),
    "batch-bad-entry": (
        "/v1/topics/fast/messages/batch",
        b'{"messages": [{"data": 1}, {"data": 2, "ordering_key": ""}]}',
        {},
    ),
}


@pytest.fixture
async def hookline(receiver: Receiver) -> AsyncIterator[Hookline]:
    """Builtin hookline, batches of at most 2, one subscription on ``fast``."""
    async with running_hookline("builtin", limits={"max_batch": 2}) as running:
        await running.subscribe(topic="fast", url=receiver.url())
        yield running


def fast_path(hookline: Hookline) -> FastPublisher:
    """The app's fast path (one per app, whichever layer serves)."""
    app = hookline.app
    assert isinstance(app, HooklineApp)
    assert app.fast_publish is not None
    return app.fast_publish


def shape(response: httpx.Response) -> tuple[int, list[str], Any]:
    """Status, header names and the body with ids blanked (they are new per message)."""

    def blank(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: "<id>" if k == "id" else blank(v) for k, v in value.items()}
        if isinstance(value, list):
            return [blank(v) for v in value]
        return value

    return response.status_code, sorted(response.headers.keys()), blank(response.json())


@pytest.mark.parametrize("route", list(GOOD))
async def test_a_good_publish_is_served_fast_and_answered_as_the_route_does(
    hookline: Hookline, receiver: Receiver, route: str
) -> None:
    """Same status, headers and body both ways; the message is delivered both times."""
    path, body = GOOD[route]
    fast = await hookline.client.post(path, content=body, headers=FAST)
    assert fast_path(hookline).served == 1
    slow = await hookline.client.post(path, content=body, headers=SLOW)
    assert fast_path(hookline).served == 1
    assert shape(fast) == shape(slow)
    assert fast.status_code in (200, 202)
    per_request = 2 if route == "batch" else 1
    got = await receiver.wait_for(2 * per_request)
    sent = [d.json()["data"] for d in got]
    assert sent[:per_request] == sent[per_request:]


@pytest.mark.parametrize("case", list(BAD))
async def test_a_refused_publish_gets_the_routes_own_error(
    hookline: Hookline, receiver: Receiver, case: str
) -> None:
    """Anything the fast path does not take is answered by the route, stores nothing."""
    path, body, headers = BAD[case]
    fast = await hookline.client.post(path, content=body, headers={**FAST, **headers})
    slow = await hookline.client.post(path, content=body, headers={**SLOW, **headers})
    assert fast.status_code == 422, fast.text
    assert fast.json() == slow.json()
    assert fast.json()["error"]["code"] == "validation_error"
    assert fast_path(hookline).served == 0
    await hookline.publish("fast", "canary")
    [got] = await receiver.wait_for(1)
    assert got.json()["data"] == "canary"


async def test_idempotency_keys_hold_across_both_paths(hookline: Hookline) -> None:
    """A repeat of a key gets the first id back, whichever path answered either request."""
    path = "/v1/topics/fast/messages"
    key = {"Idempotency-Key": "order-1"}
    first = await hookline.client.post(path, content=b'{"data": 1}', headers={**FAST, **key})
    again = await hookline.client.post(path, content=b'{"data": 2}', headers={**FAST, **key})
    slow = await hookline.client.post(path, content=b'{"data": 3}', headers={**SLOW, **key})
    assert first.json()["duplicate"] is False
    assert again.json() == {**first.json(), "duplicate": True}
    assert slow.json() == again.json()
    assert fast_path(hookline).served == 2


async def test_a_trace_header_wins_over_the_body_field_on_the_fast_path(
    hookline: Hookline, receiver: Receiver
) -> None:
    """``/v1/enqueue``: header traceparent first; the body's when the header is invalid."""
    body = b'{"topic": "fast", "data": 1, "traceparent": "%s"}' % BODY_PARENT.encode()
    await hookline.client.post(
        "/v1/enqueue", content=body, headers={**FAST, "traceparent": TRACEPARENT}
    )
    await hookline.client.post(
        "/v1/enqueue", content=body, headers={**FAST, "traceparent": "garbage"}
    )
    assert fast_path(hookline).served == 2
    first, second = await receiver.wait_for(2)
    assert first.json()["traceparent"].split("-")[1] == TRACEPARENT.split("-")[1]
    assert second.json()["traceparent"].split("-")[1] == BODY_PARENT.split("-")[1]


async def test_with_keys_only_an_authorized_publish_is_served_fast() -> None:
    """A good key is checked on the fast path; a missing or weak one gets the route's 401/403."""
    keys = "pub-key-0001:publish,dlq-key-0001:dlq"
    async with running_hookline("builtin", api_keys=keys) as hookline:
        path, body = GOOD["single"]
        ok = await hookline.client.post(
            path, content=body, headers={**FAST, "Authorization": "Bearer pub-key-0001"}
        )
        assert ok.status_code == 202
        missing = await hookline.client.post(path, content=body, headers=FAST)
        weak = await hookline.client.post(
            path, content=body, headers={**FAST, "Authorization": "Bearer dlq-key-0001"}
        )
        assert fast_path(hookline).served == 1
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert weak.status_code == 403
        assert weak.json()["error"]["code"] == "forbidden"


async def test_a_backend_refusal_after_decoding_is_the_usual_503() -> None:
    """The adapter's own errors go through the app's handlers: same code, Retry-After."""
    async with running_hookline("builtin", adapter={"max_messages": 1}) as hookline:
        await hookline.client.post(
            "/v1/subscriptions",
            json={"topic": "fast", "url": "http://127.0.0.1:9/", "paused": True},
        )
        path, body = GOOD["single"]
        first = await hookline.client.post(path, content=body, headers=FAST)
        full = await hookline.client.post(path, content=body, headers=FAST)
        assert first.status_code == 202
        assert full.status_code == 503
        assert full.json()["error"]["code"] == "capacity_exceeded"
        assert full.headers["retry-after"] == "1"


async def test_integers_beyond_64_bits_arrive_exact(hookline: Hookline, receiver: Receiver) -> None:
    """The strict decoder's pre-check sends such bodies to the exact (stdlib) parser."""
    big = 123456789012345678901234567890
    response = await hookline.client.post(
        "/v1/topics/fast/messages",
        content=b'{"data": [%d, 18446744073709551616]}' % big,
        headers=FAST,
    )
    assert response.status_code == 202
    [got] = await receiver.wait_for(1)
    assert got.json()["data"] == [big, 2**64]
    assert got.body.count(b"123456789012345678901234567890,18446744073709551616") == 1


KEYED = {
    "single": ("/v1/topics/fast/messages", b'{"data": 1, "ordering_key": "order-7"}'),
    "batch": (
        "/v1/topics/fast/messages/batch",
        b'{"messages": [{"data": 1, "ordering_key": "order-7"}]}',
    ),
    "enqueue": ("/v1/enqueue", b'{"topic": "fast", "data": 1, "ordering_key": "order-7"}'),
    "function": (
        "/v1/functions/queue.enqueue",
        b'{"topic": "fast", "data": 1, "ordering_key": "order-7"}',
    ),
}


@pytest.mark.parametrize("way", ["fast", "slow"])
@pytest.mark.parametrize("route", list(KEYED))
async def test_an_ordering_key_is_kept_either_way(
    hookline: Hookline, receiver: Receiver, route: str, way: str
) -> None:
    """A keyed publish served by the fast path or the route stores the same key: the
    receiver's envelope carries it."""
    path, body = KEYED[route]
    response = await hookline.client.post(
        path, content=body, headers=FAST if way == "fast" else SLOW
    )
    assert response.status_code in (200, 202), response.text
    assert fast_path(hookline).served == (1 if way == "fast" else 0)
    [delivery] = await receiver.wait_for(1)
    assert delivery.json()["ordering_key"] == "order-7"


async def test_a_deadline_is_resolved_by_the_route(hookline: Hookline, receiver: Receiver) -> None:
    """``expires_at``/``ttl_ms`` are the route's alone: published the slow way, with them."""
    response = await hookline.client.post(
        "/v1/topics/fast/messages", content=b'{"data": 1, "ttl_ms": 60000}', headers=FAST
    )
    assert response.status_code == 202, response.text
    assert fast_path(hookline).served == 0
    [got] = await receiver.wait_for(1)
    assert got.json()["expires_at"] > 0


async def test_request_limits_hold_before_the_fast_path() -> None:
    """The fast path answers before the limit middlewares, so it checks them: too many
    headers, too many header bytes, a compressed body or a declared body over the limit get
    the app's 431/415/413.
    """
    limits = {"max_headers": 16, "max_header_bytes": 4096, "max_body_bytes": 1024}
    async with running_hookline("builtin", limits=limits) as hookline:
        path = "/v1/topics/fast/messages"
        many = {f"x-h{i}": "v" for i in range(20)}
        big = {"x-big": "v" * 5000}
        for extra, status in ((many, 431), (big, 431)):
            response = await hookline.client.post(
                path, content=b'{"data": 1}', headers={**FAST, **extra}
            )
            assert response.status_code == status, response.text
        for encoding in ("gzip", "identity, br"):
            response = await hookline.client.post(
                path, content=b'{"data": 1}', headers={**FAST, "Content-Encoding": encoding}
            )
            assert response.status_code == 415, response.text
            assert response.json()["error"]["code"] == "unsupported_content_encoding"
        body = b'{"data": "%s"}' % (b"x" * 2000)
        response = await hookline.client.post(path, content=body, headers=FAST)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"
        assert fast_path(hookline).served == 0


async def test_a_chunked_body_is_published_the_slow_way(
    hookline: Hookline, receiver: Receiver
) -> None:
    """A body of undeclared size is left to the body-limit middleware and the route."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"data": '
        yield b'"chunked"}'

    response = await hookline.client.post(
        "/v1/topics/fast/messages", content=chunks(), headers=FAST
    )
    assert response.status_code == 202, response.text
    assert fast_path(hookline).served == 0
    [got] = await receiver.wait_for(1)
    assert got.json()["data"] == "chunked"


async def test_a_batch_with_keys_reports_its_repeats(hookline: Hookline) -> None:
    """Idempotency keys inside batches: a repeat (also within one batch) gets the first id."""
    path = "/v1/topics/fast/messages/batch"
    body = (
        b'{"messages": [{"data": 1, "idempotency_key": "a"}, {"data": 2, "idempotency_key": "a"}]}'
    )
    first = await hookline.client.post(path, content=body, headers=FAST)
    assert first.status_code == 202, first.text
    one, two = first.json()["results"]
    assert one["duplicate"] is False
    assert two == {"id": one["id"], "duplicate": True}
    again = await hookline.client.post(path, content=body, headers=SLOW)
    assert again.json()["results"] == [two, two]
    assert fast_path(hookline).served == 1
