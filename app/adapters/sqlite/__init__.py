"""SQLite adapter (``modules::queue::SqliteAdapter``): durable, embedded, one host."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.adapters.sqlite.settings import SqliteSettings

if TYPE_CHECKING:
    from app.adapters.sqlite.adapter import SqliteAdapter

__all__ = ["SqliteAdapter", "SqliteSettings"]


def __getattr__(name: str) -> object:
    """``SqliteAdapter`` on first use: its settings alone (read by :mod:`app.config`) need no
    broker client.
    """
    if name == "SqliteAdapter":
        from app.adapters.sqlite.adapter import SqliteAdapter

        return SqliteAdapter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
