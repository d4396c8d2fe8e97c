"""Isolation of subscriptions: a dead receiver holds only its own destination's connections.

A hung receiver here is a real TCP server that reads requests and never answers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from app.dispatch.sender import WebhookSender
from tests.harness import eventually
from tests.process import ServeProcess, write_config
from tests.receiver import Receiver


class HungReceiver:
    """Accepts connections and reads what comes, answers nothing."""

    def __init__(self) -> None:
        self.port = 0
        self.open = 0
        self.peak = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    def url(self, path: str = "/hung") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        self.open += 1
        self.peak = max(self.peak, self.open)
        try:
            while await reader.read(65536):
                pass
        except ConnectionError:
            pass
        finally:
            self.open -= 1
            self._writers.discard(writer)
            writer.close()


@asynccontextmanager
async def hung_receiver() -> AsyncIterator[HungReceiver]:
    server = HungReceiver()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_a_hung_receiver_does_not_starve_another_subscription(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Issue 11.2: with the default budgets (1,000 in all, 100 per destination)."""
    config = write_config(tmp_path / "config.yaml", "modules::queue::BuiltinQueueAdapter", {})
    server = ServeProcess(config, tmp_path / "serve.log")
    try:
        async with hung_receiver() as hung:
            await asyncio.to_thread(server.wait_ready)
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                for body in (
                    {
                        "topic": "hung",
                        "url": hung.url(),
                        "max_in_flight": 1000,
                        "timeout_ms": 60_000,
                    },
                    {"topic": "healthy", "url": receiver.url("/ok")},
                ):
                    created = await client.post("/v1/subscriptions", json=body)
                    assert created.status_code == 201, created.text
                stuck = [{"data": {"n": n}} for n in range(1000)]
                published = await client.post(
                    "/v1/topics/hung/messages/batch", json={"messages": stuck}
                )
                assert published.status_code == 202, published.text
                await eventually(lambda: hung.open >= 100, within_s=20)

                started = time.monotonic()
                healthy = [{"data": {"n": n}} for n in range(100)]
                published = await client.post(
                    "/v1/topics/healthy/messages/batch", json={"messages": healthy}
                )
                assert published.status_code == 202, published.text
                got = await receiver.wait_for(100, "/ok", within_s=10)
                took = time.monotonic() - started
                bodies = [r.json() for r in got]
                assert len({b["id"] for b in bodies}) == 100
                assert {b["attempt"] for b in bodies} == {1}, "no retry was burnt"
                assert took < 5, f"healthy deliveries took {took:.1f}s"
                # The dead receiver holds its destination's budget and no more.
                assert hung.peak == 100
    finally:
        server.close()


async def test_waiting_for_a_connection_is_not_charged_to_the_attempt(
    receiver: Receiver,
) -> None:
    """Two hung destinations fill a global pool of 2; a third attempt waits for a slot
    longer than its own timeout, then gets its full timeout and succeeds.
    """
    sender = WebhookSender("test", max_connections=2, max_connections_per_destination=1)
    await sender.start()
    try:
        async with hung_receiver() as first, hung_receiver() as second:
            hung = [
                asyncio.create_task(sender.send(h.url(), b"{}", {}, timeout_ms=800))
                for h in (first, second)
            ]
            await eventually(lambda: first.open == 1 and second.open == 1)
            started = time.monotonic()
            result = await sender.send(receiver.url("/ok"), b"{}", {}, timeout_ms=300)
            waited = time.monotonic() - started
            assert result.status == 200, result
            assert waited > 0.3, "the attempt should have waited for a pool slot"
            assert [r.reason for r in await asyncio.gather(*hung)] == ["timeout", "timeout"]
    finally:
        await sender.close()


async def test_one_destination_cannot_take_another_s_connections(receiver: Receiver) -> None:
    """Per-destination budget: a hung destination queues on its own slots only."""
    sender = WebhookSender("test", max_connections=10, max_connections_per_destination=2)
    await sender.start()
    try:
        async with hung_receiver() as hung:
            stuck = [
                asyncio.create_task(sender.send(hung.url(), b"{}", {}, timeout_ms=5_000))
                for _ in range(20)
            ]
            await eventually(lambda: hung.open == 2)
            started = time.monotonic()
            results = await asyncio.gather(
                *(sender.send(receiver.url("/ok"), b"{}", {}, timeout_ms=2_000) for _ in range(8))
            )
            assert [r.status for r in results] == [200] * 8
            assert time.monotonic() - started < 1.5
            assert hung.peak == 2
            for task in stuck:
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
    finally:
        await sender.close()
