"""Fixtures of the SQLite adapter tests: a database file per test, adapters opened on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from app.adapters.sqlite import SqliteAdapter

OpenAdapter = Callable[..., AbstractAsyncContextManager[SqliteAdapter]]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """The test's own database file (not created yet)."""
    return tmp_path / "data" / "hookline.db"


@pytest.fixture
def open_sqlite(db_path: Path) -> OpenAdapter:
    """Open started adapters on the test's file (several = several processes sharing it)."""

    @asynccontextmanager
    async def opener(**overrides: Any) -> AsyncIterator[SqliteAdapter]:
        config = {"path": str(db_path), "poll_interval_ms": 20, **overrides}
        adapter = SqliteAdapter.from_config(config)
        await adapter.start()
        try:
            yield adapter
        finally:
            await adapter.close()

    return opener
