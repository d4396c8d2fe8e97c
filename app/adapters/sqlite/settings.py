"""The SQLite adapter's ``config:`` block, validated once at start (:mod:`app.config`).

Every key has a default, so ``class: modules::queue::SqliteAdapter`` alone keeps its
messages in ``./data/hookline.db``. A wrong key or value fails at start with one line
naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from app.adapters.kit.settings import FORBID_UNKNOWN_KEYS, NonNegativeInt, PositiveInt

DEFAULT_PATH = "./data/hookline.db"


def _lowercase(value: object) -> object:
    """``FULL`` and ``Normal`` are what people type in YAML and env vars."""
    return value.strip().lower() if isinstance(value, str) else value


@dataclass(frozen=True, slots=True)
class SqliteSettings:
    """Where the database lives and how hard each commit is pushed to disk.

    ``synchronous: normal`` (WAL) keeps every commit through a crash of any hookline
    process; ``full`` keeps every accepted message (and registry change) also through a
    power loss or an OS crash, at the price of an fsync per commit that accepts something
    (group commit shares it among every message of the commit). Commits that only settle
    deliveries (leases, acks, retries) are synced by the next such fsync or checkpoint: a
    power loss may repeat a delivery, never lose a message.
    ``visibility_timeout_ms`` is the floor of a lease: a copy leased by a process that died
    is handed out again once its lease expires, never before the subscription's own
    ``timeout_ms + lease_margin_ms``, so a slow but live delivery is never stolen.
    ``poll_interval_ms`` is how often each process looks for work committed by another
    process sharing the file (one cheap check per process, not per subscription).
    ``max_bytes`` (0: no bound but the disk) caps the database file, and
    ``min_free_disk_bytes`` keeps that much of its disk free: past either, publishes answer
    503 while deliveries keep draining (leases and acks write too: the headroom is theirs).
    """

    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    path: Annotated[str, Field(min_length=1, pattern=r"\S")] = DEFAULT_PATH
    synchronous: Annotated[Literal["normal", "full"], BeforeValidator(_lowercase)] = "normal"
    visibility_timeout_ms: PositiveInt = 30_000
    lease_margin_ms: NonNegativeInt = 5_000
    poll_interval_ms: PositiveInt = 50
    busy_timeout_ms: PositiveInt = 5_000
    max_bytes: NonNegativeInt = 0
    min_free_disk_bytes: NonNegativeInt = 16 * 1024 * 1024

    def visibility_ms(self, delivery_timeout_ms: int) -> int:
        """How long a lease lasts before another receive may take the copy over."""
        return max(self.visibility_timeout_ms, delivery_timeout_ms + self.lease_margin_ms)
