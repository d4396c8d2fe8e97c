"""Opening an isolated adapter of each kind for the contract suite.

Each durable backend gets a unique key prefix / vhost / queue names per test and is
cleaned up afterwards. An unreachable backend skips its tests with the reason, unless
``HOOKLINE_REQUIRE_BACKENDS=1`` (CI), where it fails them instead.
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from app.adapters.factory import build_adapter
from app.core.ports import QueueAdapter

ADAPTER_KINDS = ["builtin", "redis", "rabbitmq", "sqlite"]

REDIS_URL = os.environ.get("HOOKLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("HOOKLINE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def backends_required() -> bool:
    """CI sets HOOKLINE_REQUIRE_BACKENDS=1 so a missing broker fails instead of skipping."""
    return os.environ.get("HOOKLINE_REQUIRE_BACKENDS") == "1"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_backend(kind: str) -> None:
    """Skip (or fail, in CI) when ``kind``'s broker is not reachable on this machine."""
    where = {"redis": ("127.0.0.1", 6379), "rabbitmq": ("127.0.0.1", 5672)}.get(kind)
    if where is None or _reachable(*where):
        return
    message = f"{kind} is not reachable on {where[0]}:{where[1]}"
    if backends_required():
        pytest.fail(f"{message} and HOOKLINE_REQUIRE_BACKENDS=1")
    pytest.skip(f"{message}; start it to run these tests")


def unique(prefix: str = "t") -> str:
    """A name no other test uses (topics, subscription ids, key prefixes)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@asynccontextmanager
async def isolated_adapter_config(kind: str) -> AsyncIterator[dict[str, Any]]:
    """The adapter ``config:`` block for one test, isolated from every other test."""
    require_backend(kind)
    if kind == "builtin":
        yield {}
    elif kind == "redis":
        from tests.backend_redis import isolated_redis_config

        async with isolated_redis_config(REDIS_URL) as config:
            yield config
    elif kind == "rabbitmq":
        from tests.backend_rabbitmq import isolated_rabbitmq_config

        async with isolated_rabbitmq_config(AMQP_URL) as config:
            yield config
    elif kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="hookline-sqlite-") as directory:
            yield {"path": str(Path(directory) / "hookline.db"), "poll_interval_ms": 20}
    else:
        raise ValueError(kind)


@asynccontextmanager
async def open_adapter(kind: str, **overrides: Any) -> AsyncIterator[QueueAdapter]:
    """A started, isolated adapter of ``kind``; closed (and its data removed) afterwards."""
    async with isolated_adapter_config(kind) as config:
        adapter = build_adapter(kind, {**config, **overrides})
        await adapter.start()
        try:
            yield adapter
        finally:
            await adapter.close()
