"""Many rows per statement: one SQLite step, so one GIL hand-off, instead of one per row.

sqlite3 releases the GIL around every step of a statement, and ``executemany`` steps once
per row: with a busy event loop, the writer thread then waits to take the GIL back once
per row, and every job queued behind it (a lease, a publish waiting for its 202) waits
too. A multi-row ``VALUES`` list, or an ``IN`` list, does the same work in one step.
Rows are split into chunks of a few fixed sizes, so the connection's statement cache holds
every shape of every statement (``STATEMENT_CACHE``).
"""

from __future__ import annotations

import functools
import itertools
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

CHUNKS = (64, 16, 4, 1)
"""Rows per statement: a batch of 100 runs as 64 + 16 + 16 + 4."""

STATEMENT_CACHE = 512
"""Prepared statements a connection keeps (sqlite3's default, 128, is too few for every
statement in each of the chunk sizes)."""


def chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    """``items`` in consecutive slices whose lengths are taken from :data:`CHUNKS`."""
    start, count = 0, len(items)
    for size in CHUNKS:
        while count - start >= size:
            yield items[start : start + size]
            start += size


@functools.lru_cache(maxsize=256)
def _values_sql(head: str, width: int, count: int, tail: str) -> str:
    row = "(" + ",".join("?" * width) + ")"
    return f"{head} VALUES {','.join(itertools.repeat(row, count))}{tail}"


@functools.lru_cache(maxsize=256)
def _in_sql(template: str, count: int) -> str:
    return template.replace("(?*)", "(" + ",".join("?" * count) + ")")


def insert(
    conn: sqlite3.Connection, head: str, rows: Sequence[Sequence[Any]], tail: str = ""
) -> int:
    """Run ``head VALUES (...), (...) tail`` over ``rows`` (tuples of equal width); returns
    the rows changed. ``head`` is e.g. ``INSERT INTO t (a, b)``, ``tail`` an upsert clause.
    """
    if not rows:
        return 0
    width = len(rows[0])
    changed = 0
    for chunk in chunks(rows):
        sql = _values_sql(head, width, len(chunk), tail)
        changed += conn.execute(sql, list(itertools.chain.from_iterable(chunk))).rowcount
    return changed


def where_in(
    conn: sqlite3.Connection, template: str, before: Sequence[Any], values: Sequence[Any]
) -> int:
    """Run ``template``, whose ``(?*)`` becomes a list of placeholders for ``values``
    (parameters ``before`` come first), over ``values`` chunk by chunk; returns the rows
    changed (rows changed by triggers are not counted).
    """
    changed = 0
    for chunk in chunks(values):
        changed += conn.execute(_in_sql(template, len(chunk)), [*before, *chunk]).rowcount
    return changed
