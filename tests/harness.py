"""A running hookline (API + dispatcher) inside the test's event loop, on any adapter."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from app.config import Settings
from app.main import create_app
from app.runtime import Runtime
from tests.backends import isolated_adapter_config


@dataclass
class Hookline:
    """The app, its runtime and an HTTP client talking to it in-process."""

    app: FastAPI
    client: httpx.AsyncClient
    kind: str

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    async def subscribe(self, **body: Any) -> dict[str, Any]:
        """Create a subscription (fast retries unless the test says otherwise)."""
        body.setdefault("retry", {"retry_delay_ms": 20, "jitter": 0})
        response = await self.client.post("/v1/subscriptions", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        await self.wait_until_consuming(created["id"])
        return created

    async def wait_until_consuming(self, subscription_id: str) -> None:
        """Wait until this instance's dispatcher runs a loop for the subscription."""
        await eventually(lambda: subscription_id in self.runtime.dispatcher._workers)

    async def publish(self, topic: str, data: Any, **extra: Any) -> dict[str, Any]:
        response = await self.client.post(
            f"/v1/topics/{topic}/messages", json={"data": data, **extra}
        )
        assert response.status_code == 202, response.text
        result: dict[str, Any] = response.json()
        return result

    async def dlq_count(self, topic: str, **params: str) -> int:
        response = await self.client.get(f"/v1/topics/{topic}/dlq/count", params=params)
        assert response.status_code == 200, response.text
        count: int = response.json()["count"]
        return count


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]], within_s: float = 10.0, every_s: float = 0.01
) -> None:
    """Poll ``condition`` until it holds; fail after ``within_s``."""
    deadline = time.monotonic() + within_s
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition did not hold in time")
        await asyncio.sleep(every_s)  # polling interval of a deadline-bounded wait


@asynccontextmanager
async def running_hookline(kind: str = "builtin", **settings: Any) -> AsyncIterator[Hookline]:
    """Start hookline on an isolated ``kind`` adapter; stop it gracefully afterwards."""
    async with isolated_adapter_config(kind) as adapter_config:
        adapter = {"class": kind, "config": {**adapter_config, **settings.pop("adapter", {})}}
        app = create_app(Settings(adapter=adapter, **settings))  # type: ignore[arg-type]
        async with _stopped_within(app.router.lifespan_context(app), STOP_DEADLINE_S):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://hookline") as client:
                yield Hookline(app=app, client=client, kind=kind)


STOP_DEADLINE_S = 60.0
"""A graceful stop takes the delivery grace period at most; past this it hangs."""


@asynccontextmanager
async def _stopped_within(
    lifespan: AbstractAsyncContextManager[Any], deadline_s: float
) -> AsyncIterator[None]:
    """Run ``lifespan``; if its shutdown hangs, print every task's stack and fail.

    A hung shutdown otherwise shows up as pytest-timeout's traceback of the idle selector,
    which names nothing.
    """
    await lifespan.__aenter__()
    exc_info: tuple[Any, Any, Any] = (None, None, None)
    try:
        yield
    except BaseException as exc:
        exc_info = (type(exc), exc, exc.__traceback__)
        raise
    finally:
        try:
            async with asyncio.timeout(deadline_s):
                await lifespan.__aexit__(*exc_info)
        except TimeoutError:
            current = asyncio.current_task()
            for task in asyncio.all_tasks():
                if task is not current:
                    task.print_stack(limit=12, file=sys.stderr)
            raise AssertionError(
                f"hookline did not stop within {deadline_s:.0f} s: task stacks on stderr"
            ) from None
