"""hookline's API served by a real uvicorn on 127.0.0.1, in a thread, with delivery switched off.

The fuzzer creates subscriptions to whatever URLs it invents; delivering to them would send
packets to arbitrary hosts. So the dispatcher is stopped right after start-up, before the
socket accepts a single request, and the test asserts at the end that it never ran a loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI

from app.config import Settings
from app.main import create_app
from app.runtime import Runtime


def _without_delivery(app: FastAPI) -> None:
    """Wrap the app's lifespan so the dispatcher stops before the first request."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[None]:
        async with inner(app_):
            runtime: Runtime = app_.state.runtime
            await runtime.dispatcher.stop()
            yield

    app.router.lifespan_context = lifespan


class LiveApi:
    """A uvicorn server running hookline in a background thread."""

    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings)
        _without_delivery(self.app)
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=0, log_config=None, access_log=False, lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name="live-api", daemon=True)

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    @property
    def url(self) -> str:
        [server] = self.server.servers
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def start(self, within_s: float = 20.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + within_s
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise AssertionError("uvicorn did not start in time")
            time.sleep(0.01)  # polling interval of a deadline-bounded wait

    def stop(self, within_s: float = 20.0) -> None:
        self.server.should_exit = True
        self._thread.join(within_s)
        if self._thread.is_alive():
            raise AssertionError("uvicorn did not stop in time")


@contextmanager
def live_api(**settings: Any) -> Iterator[LiveApi]:
    """Serve hookline (builtin adapter, no delivery) on a free loopback port."""
    api = LiveApi(Settings(**settings))
    api.start()
    try:
        yield api
    finally:
        api.stop()
        assert not api.runtime.dispatcher._workers, "the dispatcher ran during the test"
