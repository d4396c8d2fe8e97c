"""The SQLite adapter's ``config:`` block, validated once at start.

Every key has a default, so ``class: modules::queue::SqliteAdapter`` alone keeps its
messages in ``./data/hookline.db``. A wrong key or value fails at start with one line
naming it (the factory's ``ValueError`` becomes a :class:`app.config.ConfigError`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

DEFAULT_PATH = "./data/hookline.db"
SYNCHRONOUS = ("normal", "full")


@dataclass(frozen=True, slots=True)
class SqliteSettings:
    """Where the database lives and how hard each commit is pushed to disk.

    ``synchronous: normal`` (WAL) keeps every commit through a crash of any hookline
    process; ``full`` also through a power loss or an OS crash, at the price of an fsync per
    commit (group commit shares it among every message of the commit).
    ``visibility_timeout_ms`` is the floor of a lease: a copy leased by a process that died
    is handed out again once its lease expires, never before the subscription's own
    ``timeout_ms + lease_margin_ms``, so a slow but live delivery is never stolen.
    ``poll_interval_ms`` is how often each process looks for work committed by another
    process sharing the file (one cheap check per process, not per subscription).
    ``max_bytes`` (0: no bound but the disk) caps the database file, and
    ``min_free_disk_bytes`` keeps that much of its disk free: past either, publishes answer
    503 while deliveries keep draining (leases and acks write too: the headroom is theirs).
    """

    path: str = DEFAULT_PATH
    synchronous: str = "normal"
    visibility_timeout_ms: int = 30_000
    lease_margin_ms: int = 5_000
    poll_interval_ms: int = 50
    busy_timeout_ms: int = 5_000
    max_bytes: int = 0
    min_free_disk_bytes: int = 16 * 1024 * 1024

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SqliteSettings:
        """Validate the ``config:`` mapping; raise ``ValueError`` naming the bad key."""
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in config.items():
            if key not in known:
                raise ValueError(
                    f"unknown key {key!r} for SqliteAdapter (known: {', '.join(sorted(known))})"
                )
            values[key] = _coerce(key, raw, known[key].default)
        settings = cls(**values)
        settings._check()
        return settings

    def _check(self) -> None:
        if not self.path.strip():
            raise ValueError("path must not be empty")
        if self.synchronous not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be normal or full, got {self.synchronous!r}")
        for name in ("visibility_timeout_ms", "poll_interval_ms", "busy_timeout_ms"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        for name in ("lease_margin_ms", "max_bytes", "min_free_disk_bytes"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")

    def visibility_ms(self, delivery_timeout_ms: int) -> int:
        """How long a lease lasts before another receive may take the copy over."""
        return max(self.visibility_timeout_ms, delivery_timeout_ms + self.lease_margin_ms)


def _coerce(key: str, raw: Any, default: Any) -> Any:
    """Accept what YAML or env vars give (``"5000"``, ``"FULL"``) for a field's type."""
    if isinstance(default, int):
        try:
            value = int(raw)
        except (TypeError, ValueError):
            value = None
        if value is None or isinstance(raw, bool):
            raise ValueError(f"{key} must be an int, got {raw!r}")
        return value
    if not isinstance(raw, str):
        raise ValueError(f"{key} must be a str, got {raw!r}")  # noqa: TRY004 - a config error
    return raw.strip().lower() if key == "synchronous" else raw
