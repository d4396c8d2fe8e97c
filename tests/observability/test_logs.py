"""Log lines: one per dead-lettered message and per subscription change, with the trace id,
as text or JSON, and never a secret or a URL's password.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from app.observability.logging import build_handler
from tests.backends import unique
from tests.harness import eventually, running_hookline
from tests.process import ServeProcess, write_config
from tests.receiver import Receiver, Reply

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"
PASSWORD = "pa55-w0rd-never-logged"
SECRET = "a-plain-signing-secret-never-logged"


@pytest.fixture
def captured(request: pytest.FixtureRequest) -> Iterator[io.StringIO]:
    """hookline's loggers, written through the real handler into a buffer."""
    stream = io.StringIO()
    handler = build_handler(stream, json_format=request.param == "json")
    logger = logging.getLogger("hookline")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def lifecycle(receiver: Receiver) -> tuple[str, str]:
    """Create, publish (dead-lettered at once by a 410), change, pause, resume, rotate, delete."""
    receiver.default("/gone", Reply(status=410, body=b"unsubscribed"))
    async with running_hookline("builtin") as hookline:
        topic = unique("logged")
        url = receiver.url("/gone").replace("http://", f"http://alice:{PASSWORD}@")
        sub = await hookline.subscribe(topic=topic, url=url, secret=SECRET)
        sub_id = sub["id"]
        published = await hookline.client.post(
            f"/v1/topics/{topic}/messages", json={"data": 1}, headers={"traceparent": TRACEPARENT}
        )
        assert published.status_code == 202
        await eventually(lambda: hookline.dlq_count(topic))
        client = hookline.client
        assert (
            await client.patch(f"/v1/subscriptions/{sub_id}", json={"timeout_ms": 2000})
        ).status_code == 200
        assert (await client.post(f"/v1/subscriptions/{sub_id}/pause")).status_code == 200
        assert (await client.post(f"/v1/subscriptions/{sub_id}/resume")).status_code == 200
        rotated = await client.post(f"/v1/subscriptions/{sub_id}/rotate-secret")
        assert rotated.status_code == 200
        assert (await client.delete(f"/v1/subscriptions/{sub_id}")).status_code == 204
        return sub_id, rotated.json()["secret"]


@pytest.mark.parametrize("captured", ["json"], indirect=True)
async def test_json_lines_for_dead_letters_and_state_changes(
    captured: io.StringIO, receiver: Receiver, spans: InMemorySpanExporter
) -> None:
    sub_id, rotated_secret = await lifecycle(receiver)
    text = captured.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    mine = [line for line in lines if line.get("subscription_id") == sub_id]

    [dead] = [line for line in mine if line["message"].startswith("message dead-lettered")]
    assert dead["message"] == "message dead-lettered: gone"
    assert dead["level"] == "warning"
    assert dead["logger"] == "hookline.dispatch"
    assert dead["trace_id"] == CALLER_TRACE
    assert dead["attempts"] == 1
    assert dead["status"] == 410
    assert dead["url"].startswith("http://alice:***@127.0.0.1:")

    changes = [line["message"] for line in mine if line["logger"] == "hookline.subscriptions"]
    assert changes == [
        "subscription created",
        "subscription updated",
        "subscription paused",
        "subscription resumed",
        "subscription secret rotated",
        "subscription deleted",
    ]
    for line in mine:
        if line["logger"] == "hookline.subscriptions":
            # Logged inside the API request: its server span's trace.
            assert len(line["trace_id"]) == 32
    assert PASSWORD not in text
    assert SECRET not in text
    assert rotated_secret not in text


@pytest.mark.parametrize("captured", ["text"], indirect=True)
async def test_text_lines_carry_the_same_fields(captured: io.StringIO, receiver: Receiver) -> None:
    sub_id, rotated_secret = await lifecycle(receiver)
    text = captured.getvalue()
    [dead] = [line for line in text.splitlines() if "message dead-lettered: gone" in line]
    assert f"subscription_id={sub_id}" in dead
    assert f"trace_id={CALLER_TRACE}" in dead
    assert "url=http://alice:***@127.0.0.1:" in dead
    # Six registry changes, the pause and resume transitions (hookline.insight), one dead letter.
    assert sum(f"subscription_id={sub_id}" in line for line in text.splitlines()) == 9
    assert PASSWORD not in text
    assert SECRET not in text
    assert rotated_secret not in text


@pytest.mark.parametrize("captured", ["json", "text"], indirect=True)
def test_any_log_call_is_redacted(captured: io.StringIO) -> None:
    """A future log call that forgets to mask still cannot leak."""
    logger = logging.getLogger("hookline.test")
    logger.warning(
        "posting to %s with %s",
        f"https://bob:{PASSWORD}@hooks.example.com/x",
        "Authorization: Bearer hl_live_0123456789",
        extra={
            "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "url": f"http://u:{PASSWORD}@h/",
        },
    )
    try:
        raise ValueError(f"cannot reach https://bob:{PASSWORD}@hooks.example.com/")
    except ValueError:
        logger.exception("failed")
    text = captured.getvalue()
    assert PASSWORD not in text
    assert "hl_live_0123456789" not in text
    assert "MfKQ9r8" not in text
    assert "https://bob:***@hooks.example.com/x" in text


async def test_serve_with_json_logging_writes_only_json(tmp_path: Path, receiver: Receiver) -> None:
    """``logging: {json: true}``: every line a process writes (uvicorn's too) is JSON."""
    config = write_config(
        tmp_path / "config.yaml", "modules::queue::BuiltinQueueAdapter", {}, logging={"json": True}
    )
    server = ServeProcess(config, tmp_path / "serve.log")
    try:
        await asyncio.to_thread(server.wait_ready)
        async with httpx.AsyncClient(base_url=server.url) as client:
            created = await client.post(
                "/v1/subscriptions", json={"topic": "t", "url": receiver.url()}
            )
            assert created.status_code == 201
        await asyncio.to_thread(server.terminate)
        log = server.log()
    finally:
        server.close()
    lines: list[dict[str, Any]] = [json.loads(line) for line in log.splitlines() if line]
    messages = [line["message"] for line in lines]
    assert "subscription created" in messages
    assert "stopped" in messages
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
