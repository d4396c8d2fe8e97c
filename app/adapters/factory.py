"""Building the adapter that the validated ``adapter:`` settings name.

Imports are lazy so the builtin adapter never needs a broker client at import time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.config import (
    AdapterSettings,
    BuiltinAdapterSettings,
    RabbitMQAdapterSettings,
    RedisAdapterSettings,
    SqliteAdapterSettings,
    adapter_settings,
)
from app.core.ports import QueueAdapter


def build(settings: AdapterSettings) -> QueueAdapter:
    """The adapter of ``settings`` (one member of the union), not started yet."""
    if isinstance(settings, RedisAdapterSettings):
        from app.adapters.redis.adapter import RedisAdapter

        return RedisAdapter(settings.config)
    if isinstance(settings, RabbitMQAdapterSettings):
        from app.adapters.rabbitmq.adapter import RabbitMQAdapter

        return RabbitMQAdapter(settings.config)
    if isinstance(settings, SqliteAdapterSettings):
        from app.adapters.sqlite.adapter import SqliteAdapter

        return SqliteAdapter.probed(settings.config)
    if isinstance(settings, BuiltinAdapterSettings):
        from app.adapters.builtin import BuiltinQueueAdapter

        return BuiltinQueueAdapter(settings.config)
    raise TypeError(f"no adapter is built from {type(settings).__name__}")  # pragma: no cover


def build_adapter(class_name: str, config: Mapping[str, Any]) -> QueueAdapter:
    """Validate ``config`` for the adapter ``class_name`` (engine or short name) and build it.

    Raises :class:`app.core.errors.ConfigError` with one line naming a bad key.
    """
    return build(adapter_settings(class_name, dict(config)))
