"""Choosing an adapter from the engine-style class name in ``config.yaml``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.core.ports import QueueAdapter

ADAPTER_CLASSES = {
    "modules::queue::BuiltinQueueAdapter": "builtin",
    "modules::queue::RedisAdapter": "redis",
    "modules::queue::RabbitMQAdapter": "rabbitmq",
}
"""Engine class names and the short names they map to (the short names work too)."""

BUILTIN_KEYS = ("max_bytes", "max_messages")
"""What the builtin adapter's ``config:`` may hold (a typo there must not pass unseen)."""


def adapter_kind(class_name: str) -> str:
    """Short name (``builtin``/``redis``/``rabbitmq``) for an engine class or short name."""
    if class_name in ADAPTER_CLASSES:
        return ADAPTER_CLASSES[class_name]
    if class_name in ADAPTER_CLASSES.values():
        return class_name
    known = ", ".join(ADAPTER_CLASSES)
    raise ValueError(f"unknown adapter class {class_name!r} (known: {known})")


def build_adapter(class_name: str, config: Mapping[str, Any]) -> QueueAdapter:
    """Instantiate the adapter named by ``class_name`` with its ``config`` block.

    Imports are lazy so the builtin adapter never needs a broker client at import time.
    """
    kind = adapter_kind(class_name)
    if kind == "redis":
        from app.adapters.redis import RedisAdapter

        return RedisAdapter.from_config(config)
    if kind == "rabbitmq":
        from app.adapters.rabbitmq import RabbitMQAdapter

        return RabbitMQAdapter.from_config(config)
    from app.adapters.builtin import BuiltinQueueAdapter

    unknown = sorted(set(config) - set(BUILTIN_KEYS), key=str)
    if unknown:
        raise ValueError(
            f"unknown key {unknown[0]!r} for BuiltinQueueAdapter (known: {', '.join(BUILTIN_KEYS)})"
        )
    return BuiltinQueueAdapter(
        max_messages=int(config.get("max_messages", 1_000_000)),
        max_bytes=int(config.get("max_bytes", 256 * 1024 * 1024)),
    )
