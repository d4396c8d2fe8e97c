"""A real ``hookline serve`` per test module, and trigger apps served by uvicorn in-process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tests.process import ServeProcess, free_port, write_config


def start_hookline(tmp: Path, **extra: Any) -> ServeProcess:
    """A ready ``hookline serve`` on the builtin adapter."""
    config = write_config(tmp / "config.yaml", "modules::queue::BuiltinQueueAdapter", {}, **extra)
    server = ServeProcess(config, tmp / "serve.log")
    try:
        server.wait_ready()
    except BaseException:
        server.close()
        raise
    return server


@pytest.fixture(scope="module")
def hookline_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """One open hookline for the module's tests (they use their own topics and ids)."""
    server = start_hookline(tmp_path_factory.mktemp("hookline"))
    try:
        yield server
    finally:
        log = server.log()
        server.close()
        assert "Traceback" not in log, log


@contextlib.asynccontextmanager
async def serving(app: Any, port: int | None = None) -> AsyncIterator[str]:
    """Serve the ASGI ``app`` on loopback (lifespan on: start-up runs first); its URL."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise AssertionError("the app did not start")
            await asyncio.sleep(0.01)  # polling interval: uvicorn has no start-up event
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
