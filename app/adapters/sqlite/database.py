"""Two threads own the two connections: one writer with group commit, one reader.

Every write (publish, lease, ack, retry, DLQ move, registry change) is a job queued to the
writer thread. The thread takes every job waiting, runs each inside its own savepoint of
one transaction and commits once: a burst of publishes and acks shares one commit (and,
with ``synchronous: full``, one fsync). A job that fails rolls back alone; the others still
commit. Reads that need no lock run on the reader thread, so a long write never delays a
``GET``. Nothing here ever blocks the event loop.

With ``synchronous: full``, only a commit holding a *durable* job (one that accepts
something: a publish, a registry change, an idempotency key, a DLQ redrive or purge) waits
for its fsync. Commits of settling jobs alone (leases, acks, retries, dead-letter moves, the
insight log) are written to the WAL without one: the next durable commit's fsync, or the
next checkpoint, makes them durable too, in order. A power loss can undo such a settlement,
so a delivery may be repeated (at-least-once), but never an accepted message lost. This
keeps deliveries from waiting on the disk: one fsync per few milliseconds of publishes,
none per lease.

Jobs nobody waits on to make progress (acknowledgements, the insight log's flushes) are
*lazy*: a commit holding only such jobs waits up to ``LAZY_S`` for another job to join it.
Under load a lease or a publish comes within that time and carries them in its commit: a
drain commits about once per lease instead of once per lease, acknowledgement and flush,
and each commit writes the pages it dirtied to the WAL once for all of them.

WAL checkpoints run on their own thread (:mod:`.checkpoint`), never inside a commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from app.adapters.sqlite.checkpoint import Checkpointer
from app.adapters.sqlite.schema import connect
from app.adapters.sqlite.settings import SqliteSettings
from app.core.errors import BackendUnavailableError

logger = logging.getLogger("hookline.sqlite")

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], T]

SWITCH_INTERVAL_S = 0.0005
"""The process's GIL switch interval once a SQLite adapter opens (Python's default: 5 ms).

sqlite3 releases the GIL around every statement step; when the event loop is busy, the
writer thread then waits up to a whole switch interval to take it back, once per step: a
group commit of a few hundred steps took tens of milliseconds, and deliveries and 202s
waited on it (drain 0.39x of builtin's in one run, 0.79x with 0.5 ms).
"""

LAZY_S = 0.002
"""How long a commit of lazy jobs alone waits for company (an acknowledgement is written at
most this much later; its lease is held meanwhile, so nothing is delivered twice). Measured
on a pinned drain: commits per 50,000 deliveries 2,263 -> 1,591, writer CPU per delivery
-2 us."""

MAX_BATCH = 2000
"""Jobs per transaction at most (bounds how long one commit keeps the write lock)."""


@dataclass(slots=True)
class _Queued:
    job: Job[Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    durable: bool
    lazy: bool = False


@dataclass(slots=True)
class _Outcome:
    queued: _Queued
    value: Any = None
    error: BaseException | None = None


def unavailable(exc: sqlite3.Error) -> BackendUnavailableError:
    """The 503 of a SQLite error (disk full, read-only file, lock held too long, I/O)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return BackendUnavailableError(f"sqlite: {text}")


class Database:
    """The writer thread (group commit) and the reader thread of one adapter."""

    def __init__(self, settings: SqliteSettings) -> None:
        """No I/O: :meth:`open` connects."""
        self._settings = settings
        self._jobs: queue.SimpleQueue[_Queued | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._reader_conn: sqlite3.Connection | None = None
        self._failing = False
        self._last_error: BaseException | None = None
        self.checkpointer = Checkpointer(settings)
        self.commits = 0
        """Transactions committed by this process's writer (jobs share them: group commit)."""

    @property
    def is_open(self) -> bool:
        """True between :meth:`open` and :meth:`close`."""
        return self._writer is not None

    async def open(self) -> None:
        """Connect both threads (off the event loop) and start the writer."""
        if self._writer is not None:
            return
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        writer_conn = await asyncio.to_thread(connect, self._settings)
        # The checkpointer thread copies the WAL back, never a commit of this writer.
        await asyncio.to_thread(writer_conn.execute, "PRAGMA wal_autocheckpoint = 0")
        self._reader_conn = await asyncio.to_thread(connect, self._settings)
        await asyncio.to_thread(self.checkpointer.start)
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-reader")
        self._writer = threading.Thread(
            target=self._write_loop, args=(writer_conn,), name="sqlite-writer", daemon=True
        )
        self._writer.start()

    async def close(self) -> None:
        """Finish queued jobs, then close both connections."""
        writer, reader, conn = self._writer, self._reader, self._reader_conn
        self._writer, self._reader, self._reader_conn = None, None, None
        if writer is not None:
            self._jobs.put(None)
            await asyncio.to_thread(writer.join)
        await asyncio.to_thread(self.checkpointer.stop)
        if reader is not None and conn is not None:
            await asyncio.get_running_loop().run_in_executor(reader, conn.close)
            reader.shutdown(wait=False)

    # -- calls ---------------------------------------------------------------------------

    async def write(self, job: Job[T], *, durable: bool = True, lazy: bool = False) -> T:
        """Run ``job(conn)`` in the next group commit; returns once that commit is written.

        ``durable=False`` (settling a lease, the insight log) lets a ``synchronous: full``
        commit skip its fsync when no durable job shares it; ``lazy=True`` lets the job wait
        up to ``LAZY_S`` for others to share its commit (see the module docstring).
        """
        if self._writer is None:
            raise BackendUnavailableError("sqlite: the adapter is not started")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put(_Queued(job, future, loop, durable, lazy))
        return await future

    async def read(self, job: Job[T]) -> T:
        """Run ``job(conn)`` on the reader thread (autocommit: each statement sees the latest
        commit; wrap several in ``BEGIN``/``COMMIT`` for one snapshot).
        """
        reader, conn = self._reader, self._reader_conn
        if reader is None or conn is None:
            raise BackendUnavailableError("sqlite: the adapter is not started")

        def call() -> T:
            try:
                return job(conn)
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise unavailable(exc) from exc

        return await asyncio.get_running_loop().run_in_executor(reader, call)

    # -- the writer thread ---------------------------------------------------------------

    def _write_loop(self, conn: sqlite3.Connection) -> None:
        full = self._settings.synchronous == "full"
        synced = full  # the connection's current level (connect() set the configured one)
        try:
            stopping = False
            while not stopping:
                first = self._jobs.get()
                if first is None:
                    break
                batch = [first]
                stopping = self._take_waiting(batch) or self._wait_for_company(batch)
                if full:
                    durable = any(queued.durable for queued in batch)
                    if durable != synced:
                        conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
                        synced = durable
                self._settle(self._commit(conn, batch))
        finally:
            conn.close()

    def _wait_for_company(self, batch: list[_Queued]) -> bool:
        """While ``batch`` holds only lazy jobs, wait up to ``LAZY_S`` for more; True when a
        stop came meanwhile.
        """
        deadline = time.monotonic() + LAZY_S
        while len(batch) < MAX_BATCH and all(queued.lazy for queued in batch):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                more = self._jobs.get(timeout=remaining)
            except queue.Empty:
                return False
            if more is None:
                return True
            batch.append(more)
            if self._take_waiting(batch):
                return True
        return False

    def _take_waiting(self, batch: list[_Queued]) -> bool:
        """Add the jobs queued meanwhile to ``batch``; True when a stop was among them."""
        while len(batch) < MAX_BATCH:
            try:
                more = self._jobs.get_nowait()
            except queue.Empty:
                return False
            if more is None:
                return True
            batch.append(more)
        return False

    def _commit(self, conn: sqlite3.Connection, batch: list[_Queued]) -> list[_Outcome]:
        """Run ``batch`` in one transaction; a job that fails is rolled back alone.

        Jobs run bare first: a savepoint around each would cost two more statements (two
        more GIL hand-offs) per job, for failures that are rare. When one fails, the whole
        transaction is rolled back and the batch runs again with a savepoint per job
        (:meth:`_commit_guarded`): a job must have no effect but on the connection.
        """
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            return [_Outcome(q, error=unavailable(exc)) for q in batch]
        done: list[_Outcome] = []
        for queued in batch:
            try:
                done.append(_Outcome(queued, value=queued.job(conn)))
            except Exception:  # noqa: BLE001 - run again below, where it is settled
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                return self._commit_guarded(conn, batch)
        return self._finish(conn, done, [])

    def _commit_guarded(self, conn: sqlite3.Connection, batch: list[_Queued]) -> list[_Outcome]:
        """:meth:`_commit` with a savepoint per job, so a failing job is rolled back alone."""
        settled: list[_Outcome] = []
        pending = batch
        while pending:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                return settled + [_Outcome(q, error=unavailable(exc)) for q in pending]
            done: list[_Outcome] = []
            lost_at: int | None = None
            for index, queued in enumerate(pending):
                outcome = self._run_one(conn, queued)
                if outcome is None:  # SQLite rolled the whole transaction back
                    lost_at = index
                    break
                (done if outcome.error is None else settled).append(outcome)
            if lost_at is not None:
                # The failed job is settled; the others lost their effects: run them again.
                settled.append(_Outcome(pending[lost_at], error=self._last_error))
                pending = [o.queued for o in done] + pending[lost_at + 1 :]
                continue
            return self._finish(conn, done, settled)
        return settled

    def _finish(
        self, conn: sqlite3.Connection, done: list[_Outcome], settled: list[_Outcome]
    ) -> list[_Outcome]:
        """COMMIT the jobs of ``done``; if that fails, each alone in its own transaction."""
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            if len(done) == 1:
                return [*settled, _Outcome(done[0].queued, error=unavailable(exc))]
            # Which job could not be kept is unknown: give each its own transaction.
            for outcome in done:
                settled += self._commit_guarded(conn, [outcome.queued])
            return settled
        self.commits += 1
        self.checkpointer.committed()
        self._note_health(ok=True)
        return settled + done

    def _run_one(self, conn: sqlite3.Connection, queued: _Queued) -> _Outcome | None:
        """One job inside a savepoint; None when its failure ended the whole transaction."""
        conn.execute("SAVEPOINT job")
        try:
            value = queued.job(conn)
        except Exception as exc:  # noqa: BLE001 - handed to the caller's future
            error: BaseException = unavailable(exc) if isinstance(exc, sqlite3.Error) else exc
            if isinstance(exc, sqlite3.Error):
                self._note_health(ok=False, error=error)
            if not conn.in_transaction:
                self._last_error = error
                return None
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            return _Outcome(queued, error=error)
        conn.execute("RELEASE job")
        return _Outcome(queued, value=value)

    def _note_health(self, *, ok: bool, error: BaseException | None = None) -> None:
        """Log the first failure of a run of failures and the recovery, not every one."""
        if ok and self._failing:
            self._failing = False
            logger.info("sqlite writes succeed again")
        elif not ok and not self._failing:
            self._failing = True
            logger.warning("sqlite write failed: %s", error)

    @staticmethod
    def _settle(outcomes: list[_Outcome]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
        for outcome in outcomes:
            by_loop.setdefault(outcome.queued.loop, []).append(outcome)
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_resolve, items)


def _resolve(outcomes: list[_Outcome]) -> None:
    for outcome in outcomes:
        future = outcome.queued.future
        if future.done():
            continue
        if outcome.error is not None:
            future.set_exception(outcome.error)
        else:
            future.set_result(outcome.value)
