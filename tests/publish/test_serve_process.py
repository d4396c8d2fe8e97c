"""Issue 9 items 7, 13 and 15 against a real ``hookline serve`` with no tracing SDK."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx

from tests.harness import eventually
from tests.process import ServeProcess, write_config
from tests.receiver import Receiver

HOSTILE = [
    ("/v1/topics/t/messages", b'{"data": {"price": NaN}}', "data.price: NaN"),
    ("/v1/topics/t/messages", b'{"data": [Infinity]}', "data.0: Infinity"),
    ("/v1/topics/t/messages", b'{"data": "\\ud800"}', "data: the string holds a lone"),
    ("/v1/topics/t/messages", b'{"data": 1, "headers": {"x-a": "\\ud800"}}', "headers.x-a"),
    ("/v1/topics/t/messages/batch", b'{"messages": [{"data": -Infinity}]}', "messages.0.data"),
    ("/v1/topics/t/messages/batch", b'{"messages": [{"data": {"\\udc00": 1}}]}', "messages.0.data"),
    ("/v1/enqueue", b'{"topic": "t", "data": 1e400}', "data: 1e400"),
    ("/v1/functions/queue.enqueue", b'{"topic": "t", "data": "\\udbff"}', "data: the string"),
    ("/v1/topics/t/messages", b'{"data": [1, ' + b"9" * 5000 + b"]}", "data.1: an integer of 5000"),
    ("/v1/enqueue", b'{"topic": "t", "data": -' + b"9" * 4301 + b"}", "data: an integer of 4301"),
    (
        "/v1/subscriptions",
        b'{"topic": "t", "url": "http://x.test/", "timeout_ms": ' + b"9" * 5000 + b"}",
        "timeout_ms: an integer",
    ),
    (
        "/v1/subscriptions",
        b'{"topic": "t", "url": "http://x.test/", "metadata": {"a": NaN}}',
        "metadata.a: NaN",
    ),
    ("/v1/messages/m/resend", b'{"subscription": "\\ud800"}', "subscription: the string"),
]
NOT_JSON = [
    ("/v1/topics/t/messages", {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
    (
        "/v1/topics/t/messages/batch",
        {"Content-Type": "application/x-www-form-urlencoded"},
        415,
        "unsupported_media_type",
    ),
    ("/v1/enqueue", {}, 415, "unsupported_media_type"),
    ("/v1/subscriptions", {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
    ("/v1/topics/t/dlq/redrive", {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
    (
        "/v1/topics/t/messages",
        {"Content-Type": "application/json", "Content-Encoding": "gzip"},
        415,
        "unsupported_content_encoding",
    ),
]
"""Bodies not sent as plain JSON: each a 415 that says what to send, nothing stored."""
W3C = re.compile(r"^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-01$")
BODY_PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def test_serve_refuses_unrepresentable_json_and_traces_every_message(
    tmp_path: Path, receiver: Receiver
) -> None:
    config = write_config(tmp_path / "config.yaml", "modules::queue::BuiltinQueueAdapter", {})
    server = ServeProcess(config, tmp_path / "serve.log", env={"OTEL_SDK_DISABLED": "true"})
    try:
        await asyncio.to_thread(server.wait_ready)
        async with httpx.AsyncClient(base_url=server.url) as client:
            created = await client.post(
                "/v1/subscriptions", json={"topic": "t", "url": receiver.url()}
            )
            assert created.status_code == 201, created.text
            for path, body, where in HOSTILE:
                response = await client.post(
                    path, content=body, headers={"Content-Type": "application/json"}
                )
                assert response.status_code == 422, (path, body, response.text)
                error = response.json()["error"]
                assert error["code"] == "validation_error"
                assert error["message"].startswith(where), error
            for path, headers, status, code in NOT_JSON:
                response = await client.post(path, content=b'{"data": 1}', headers=headers)
                assert response.status_code == status, (path, headers, response.text)
                assert response.json()["error"]["code"] == code
            typed = await client.post(
                "/v1/topics/t/messages",
                content=b'{"data": "typed"}',
                headers={"Content-Type": "application/cloudevents+json; charset=utf-8"},
            )
            assert typed.status_code == 202, typed.text
            plain = await client.post("/v1/topics/t/messages", json={"data": "plain"})
            assert plain.status_code == 202
            engine = await client.post(
                "/v1/enqueue", json={"topic": "t", "data": "engine", "traceparent": BODY_PARENT}
            )
            assert engine.status_code == 202
            got = {r.json()["data"]: r for r in await receiver.wait_for(3)}
            assert W3C.match(got["plain"].headers["traceparent"])
            assert got["plain"].json()["traceparent"] == got["plain"].headers["traceparent"]
            assert got["engine"].headers["traceparent"] == BODY_PARENT

            async def settled() -> bool:
                info = (await client.get("/v1/topics/t")).json()
                return bool(info["backlog"] == 0 and info["in_flight"] == 0)

            await eventually(settled)
            assert len(receiver.requests()) == 3
        log = server.log()
        assert "Task exception was never retrieved" not in log
        assert "Traceback" not in log
    finally:
        server.close()
