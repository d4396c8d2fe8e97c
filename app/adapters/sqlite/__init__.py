"""SQLite adapter (``modules::queue::SqliteAdapter``): durable, embedded, one host."""

from app.adapters.sqlite.adapter import SqliteAdapter
from app.adapters.sqlite.settings import SqliteSettings

__all__ = ["SqliteAdapter", "SqliteSettings"]
