"""The buffered writer of delivery insight: off the hot path, one store write per flush.

Publishers and workers hand facts over synchronously (an append to a list); a background
task writes whatever accumulated every ``flush_interval_ms`` as one batch, so a busy
dispatcher pays one round trip per few milliseconds, not one per attempt. Marks are
reduced to the newest per (message, subscription) within a batch, and an ``in_flight``
mark waits up to ``IN_FLIGHT_HOLD_MS`` for its attempt's outcome: a delivery that ends
sooner (nearly all) writes only its outcome, and a slow one shows ``in_flight`` after that
delay. An explicit :meth:`InsightRecorder.flush` writes everything at once. When the store
fails or falls behind by ``MAX_PENDING`` facts, facts are dropped and counted: insight is a
log, never a reason to slow or stop delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from app.core.insight import AttemptRecord, InsightBatch, InsightSettings, StateMark
from app.core.models import now_ms

if TYPE_CHECKING:
    from app.core.models import Envelope
    from app.core.ports import InsightStore
    from app.observability.metrics import DispatchMetrics

logger = logging.getLogger("hookline.insight")

MAX_PENDING = 100_000

IN_FLIGHT_HOLD_MS = 500
"""How long an ``in_flight`` mark waits for the attempt's outcome before it is written."""


class InsightRecorder:
    """Collects facts and flushes them to the adapter's :class:`InsightStore`."""

    def __init__(
        self,
        store: InsightStore | None,
        settings: InsightSettings,
        metrics: DispatchMetrics | None = None,
    ) -> None:
        """``store`` None (``insight.enabled: false``) makes every call a no-op."""
        self.store = store
        self._settings = settings
        self._metrics = metrics
        self._messages: list[Envelope] = []
        self._attempts: list[AttemptRecord] = []
        self._marks: dict[tuple[str, str], StateMark] = {}
        self._in_flight: dict[tuple[str, str], StateMark] = {}
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._writing: asyncio.Lock = asyncio.Lock()

    @property
    def enabled(self) -> bool:
        """True when facts are kept."""
        return self.store is not None

    def _pending(self) -> int:
        return len(self._messages) + len(self._attempts) + len(self._marks) + len(self._in_flight)

    def _room(self) -> bool:
        if self._pending() < MAX_PENDING:
            return True
        if self._metrics is not None:
            self._metrics.insight_facts_dropped(1)
        return False

    def message(self, envelope: Envelope) -> None:
        """A message was accepted."""
        if self.store is not None and self._room():
            self._messages.append(envelope)
            self._wakeup.set()

    def messages(self, envelopes: list[Envelope]) -> None:
        """Messages were accepted together (one publish: one check, one wakeup)."""
        if self.store is None:
            return
        room = MAX_PENDING - self._pending()
        if room < len(envelopes):
            if self._metrics is not None:
                self._metrics.insight_facts_dropped(len(envelopes) - max(room, 0))
            envelopes = envelopes[: max(room, 0)]
        if envelopes:
            self._messages.extend(envelopes)
            self._wakeup.set()

    def mark(self, mark: StateMark) -> None:
        """A copy changed state (leased, filtered, parked...)."""
        if self.store is not None and self._room():
            key = (mark.message_id, mark.subscription_id)
            if mark.state == "in_flight":
                self._in_flight[key] = mark  # held: its outcome usually follows at once
            else:
                self._in_flight.pop(key, None)
                self._marks[key] = mark
                self._wakeup.set()

    def attempt(self, record: AttemptRecord) -> None:
        """An attempt ended; its mark follows from it."""
        if self.store is not None and self._room():
            self._attempts.append(record)
            key = (record.message_id, record.subscription_id)
            self._in_flight.pop(key, None)
            self._marks[key] = record.mark()
            self._wakeup.set()

    def start(self) -> None:
        """Start the flusher."""
        if self.store is not None and self._task is None:
            self._task = asyncio.create_task(self._run(), name="insight-recorder")

    async def stop(self) -> None:
        """Flush what is left and stop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        """Write everything collected so far (tests call it to read their own writes)."""
        await self._flush(hold=False)

    def _due_in_flight(self, hold: bool) -> list[StateMark]:
        """``in_flight`` marks to write now: all, or those held ``IN_FLIGHT_HOLD_MS``."""
        if not hold:
            due, self._in_flight = list(self._in_flight.values()), {}
            return due
        horizon = now_ms() - IN_FLIGHT_HOLD_MS
        keys = [key for key, mark in self._in_flight.items() if mark.at <= horizon]
        return [self._in_flight.pop(key) for key in keys]

    async def _flush(self, *, hold: bool) -> None:
        if self.store is None:
            return
        async with self._writing:
            in_flight = self._due_in_flight(hold)
            if not (self._messages or self._attempts or self._marks or in_flight):
                return
            # A held in_flight mark is newer than any mark of its key still collected.
            marks = [*self._marks.values(), *in_flight]
            batch = InsightBatch(self._messages, marks, self._attempts)
            self._messages, self._attempts, self._marks = [], [], {}
            try:
                await self.store.write(batch)
            except Exception as exc:  # noqa: BLE001 - a lost log entry must not stop delivery
                logger.warning("insight write failed, %d facts dropped: %s", len(batch), exc)
                if self._metrics is not None:
                    self._metrics.insight_facts_dropped(len(batch))

    async def _run(self) -> None:
        interval = self._settings.flush_interval_ms / 1000
        while True:
            if self._in_flight:  # come back for held marks even if nothing else arrives
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), IN_FLIGHT_HOLD_MS / 1000)
            else:
                await self._wakeup.wait()
            self._wakeup.clear()
            await asyncio.sleep(interval)  # let facts accumulate into one batch
            await self._flush(hold=True)
