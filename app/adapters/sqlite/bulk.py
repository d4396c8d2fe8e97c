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

CHUNKS = (256, 128, 64, 32, 16, 8, 4, 2, 1)
"""Rows per ``VALUES`` statement: a batch of 100 runs as 64 + 32 + 4. An ``IN`` list is one
statement up to 256 values, its length rounded up to one of these by repeating a value."""

STATEMENT_CACHE = 1024
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


@functools.lru_cache(maxsize=512)
def in_sql(template: str, count: int) -> str:
    """``template`` with its ``(?*)`` replaced by a list of ``count`` placeholders."""
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


def in_lists(values: Sequence[T]) -> Iterator[Sequence[T]]:
    """``values`` in lists of at most ``CHUNKS[0]``, each padded to a length in ``CHUNKS``
    by repeating its last value (harmless in an ``IN`` list): one statement per list.
    """
    for start in range(0, len(values), CHUNKS[0]):
        part = list(values[start : start + CHUNKS[0]])
        size = min(size for size in CHUNKS if size >= len(part))
        yield part + [part[-1]] * (size - len(part))


def where_in(
    conn: sqlite3.Connection, template: str, before: Sequence[Any], values: Sequence[Any]
) -> int:
    """Run ``template``, whose ``(?*)`` becomes a list of placeholders for ``values``
    (parameters ``before`` come first), once per :func:`in_lists` list; returns the rows
    changed.
    """
    changed = 0
    for part in in_lists(values):
        changed += conn.execute(in_sql(template, len(part)), [*before, *part]).rowcount
    return changed
