"""The client's retries through a flaky proxy in front of a real hookline: a 503 with
``Retry-After`` once, or an answer lost on the way back, and the message is stored once.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

import httpx
import pytest
from hookline import AsyncClient, Client, HooklineConnectionError, RetrySettings

from tests.process import ServeProcess
from tests.receiver import Receiver

Mode = Literal["503", "lost"]


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    upstream_body: bytes | None = None


class FlakyProxy:
    """Forwards HTTP/1.1 requests to hookline; the first one is answered 503 with
    ``Retry-After: 1`` (mode ``503``) or forwarded and its answer dropped (mode ``lost``).
    """

    def __init__(self, upstream: str, mode: Mode) -> None:
        self.upstream = upstream
        self.mode = mode
        self.seen: list[Seen] = []
        self._server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {
                k.strip().lower(): v.strip()
                for k, v in (ln.split(":", 1) for ln in lines[1:] if ln)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            seen = Seen(method, path, headers)
            self.seen.append(seen)
            first = len(self.seen) == 1
            if first and self.mode == "503":
                payload = json.dumps({"error": {"code": "unavailable", "message": "busy"}})
                status, extra, content = 503, {"Retry-After": "1"}, payload.encode()
            else:
                forward = {k: v for k, v in headers.items() if k not in ("host", "connection")}
                async with httpx.AsyncClient() as http:
                    answer = await http.request(
                        method, self.upstream + path, headers=forward, content=body
                    )
                seen.upstream_body = answer.content
                if first and self.mode == "lost":
                    return  # hookline has it; the caller never hears back
                status, extra, content = answer.status_code, {}, answer.content
            reply = [f"HTTP/1.1 {status} X", "Content-Type: application/json"]
            reply += [f"{k}: {v}" for k, v in extra.items()]
            reply += [f"Content-Length: {len(content)}", "Connection: close", "", ""]
            writer.write("\r\n".join(reply).encode() + content)
            await writer.drain()
        finally:
            writer.close()


@pytest.fixture
async def proxy_factory() -> AsyncIterator[list[FlakyProxy]]:
    started: list[FlakyProxy] = []
    yield started
    for proxy in started:
        await proxy.stop()


async def flaky(hookline_server: ServeProcess, started: list[FlakyProxy], mode: Mode) -> FlakyProxy:
    proxy = FlakyProxy(hookline_server.url, mode)
    await proxy.start()
    started.append(proxy)
    return proxy


FAST = RetrySettings(max_retries=3, backoff_s=0.01)


async def test_a_503_with_retry_after_is_waited_out_and_published_once(
    hookline_server: ServeProcess, proxy_factory: list[FlakyProxy]
) -> None:
    proxy = await flaky(hookline_server, proxy_factory, "503")
    topic = f"retry-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    async with AsyncClient(proxy.url, retry=FAST) as client:
        result = await client.publish(topic, {"n": 1})
    assert time.monotonic() - started >= 0.9  # Retry-After: 1 was honoured
    assert not result.duplicate
    keys = [s.headers["idempotency-key"] for s in proxy.seen]
    assert len(keys) == 2
    assert keys[0] == keys[1]


async def test_a_lost_answer_is_retried_and_deduplicated(
    hookline_server: ServeProcess, proxy_factory: list[FlakyProxy]
) -> None:
    proxy = await flaky(hookline_server, proxy_factory, "lost")
    topic = f"lost-{uuid.uuid4().hex[:8]}"
    result = await asyncio.to_thread(lambda: Client(proxy.url, retry=FAST).publish(topic, {"n": 1}))
    first = proxy.seen[0].upstream_body
    assert first is not None
    assert result.id == json.loads(first)["id"]  # the id hookline gave the first attempt
    assert result.duplicate  # the retry stored nothing new
    assert proxy.seen[0].headers["idempotency-key"] == proxy.seen[1].headers["idempotency-key"]


async def test_enqueue_retried_after_a_lost_answer_is_delivered_once(
    hookline_server: ServeProcess, proxy_factory: list[FlakyProxy], receiver: Receiver
) -> None:
    proxy = await flaky(hookline_server, proxy_factory, "lost")
    topic = f"once-{uuid.uuid4().hex[:8]}"
    async with AsyncClient(hookline_server.url) as direct:
        await direct.subscriptions.create(topic, receiver.url("/once"), max_in_flight=1)
        async with AsyncClient(proxy.url, retry=FAST) as client:
            await client.call("queue.enqueue", {"topic": topic, "data": "order-1"})
        assert len(proxy.seen) == 2
        await direct.publish(topic, "sentinel")  # published after any duplicate could be
    # one at a time, in publish order: a duplicate of order-1 would arrive before sentinel
    got = await receiver.wait_for(2, "/once")
    assert sorted(r.json()["data"] for r in got) == ["order-1", "sentinel"]


async def test_a_redrive_is_not_repeated_after_a_lost_answer(
    hookline_server: ServeProcess, proxy_factory: list[FlakyProxy]
) -> None:
    proxy = await flaky(hookline_server, proxy_factory, "lost")
    async with AsyncClient(proxy.url, retry=FAST) as client:
        with pytest.raises(HooklineConnectionError):
            await client.dlq.redrive("nothing-here")
    assert len(proxy.seen) == 1  # a second redrive would report a wrong count
