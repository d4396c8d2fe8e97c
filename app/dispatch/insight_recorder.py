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

Every delivery passes through :meth:`InsightRecorder.mark` and
:meth:`InsightRecorder.attempt`, so they do the least possible: a dict or list operation
and a counter (the bound), no wait for the flusher (it is woken once per flush, and a
timer, not a ``wait_for`` per loop, brings it back for held ``in_flight`` marks).
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
        self._in_flight: dict[tuple[str, str], tuple[str, int, int]] = {}
        """Copies being attempted: (message id, subscription id) -> (topic, attempt, at)."""
        self._held = 0
        """Facts taken since the last flush (an upper bound of those waiting): the bound."""
        self._woken = False
        """The flusher was woken for what is collected (one ``Event.set`` per flush)."""
        self._wakeup = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._writing: asyncio.Lock = asyncio.Lock()

    @property
    def enabled(self) -> bool:
        """True when facts are kept."""
        return self.store is not None

    def _dropped(self) -> None:
        if self._metrics is not None:
            self._metrics.insight_facts_dropped(1)

    def _take(self) -> bool:
        """Room for one more fact (counted); False when the log is off or full (dropped)."""
        if self.store is None:
            return False
        if self._held >= MAX_PENDING:
            self._dropped()
            return False
        self._held += 1
        return True

    def _wake(self) -> None:
        if not self._woken:
            self._woken = True
            self._wakeup.set()

    def message(self, envelope: Envelope) -> None:
        """A message was accepted."""
        if not self._take():
            return
        self._messages.append(envelope)
        self._wake()

    def messages(self, envelopes: list[Envelope]) -> None:
        """Messages were accepted together (one publish: one check, one wakeup)."""
        if self.store is None:
            return
        room = MAX_PENDING - self._held
        if room < len(envelopes):
            if self._metrics is not None:
                self._metrics.insight_facts_dropped(len(envelopes) - max(room, 0))
            envelopes = envelopes[: max(room, 0)]
        if envelopes:
            self._held += len(envelopes)
            self._messages.extend(envelopes)
            self._wake()

    def mark(self, mark: StateMark) -> None:
        """A copy changed state (filtered, parked...)."""
        if mark.state == "in_flight":
            self.leased(mark.message_id, mark.topic, mark.subscription_id, mark.attempt, mark.at)
            return
        if not self._take():
            return
        key = (mark.message_id, mark.subscription_id)
        self._in_flight.pop(key, None)
        self._marks[key] = mark
        self._wake()

    def leased(
        self, message_id: str, topic: str, subscription_id: str, attempt: int, at: int
    ) -> None:
        """A copy's attempt started: held as a tuple (its outcome usually follows at once,
        and then no mark object is ever built for it).
        """
        if not self._take():
            return
        self._in_flight[(message_id, subscription_id)] = (topic, attempt, at)
        if self._timer is None and self._task is not None:
            self._hold_timer()

    def attempt(self, record: AttemptRecord) -> None:
        """An attempt ended. Its mark follows from it: every store derives a copy's state
        from its newest attempt and drops the copy's stored mark when an attempt comes, so
        the attempt supersedes whatever mark of that copy is still collected.
        """
        if not self._take():
            return
        self._attempts.append(record)
        key = (record.message_id, record.subscription_id)
        self._in_flight.pop(key, None)
        self._marks.pop(key, None)
        self._wake()

    def start(self) -> None:
        """Start the flusher."""
        if self.store is not None and self._task is None:
            self._task = asyncio.create_task(self._run(), name="insight-recorder")

    async def stop(self) -> None:
        """Flush what is left and stop."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
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
        if hold:
            horizon = now_ms() - IN_FLIGHT_HOLD_MS
            keys = [key for key, (_, _, at) in self._in_flight.items() if at <= horizon]
        else:
            keys = list(self._in_flight)
        due = []
        for key in keys:
            topic, attempt, at = self._in_flight.pop(key)
            due.append(StateMark(key[0], topic, key[1], "in_flight", at, attempt))
        return due

    async def _flush(self, *, hold: bool) -> None:
        if self.store is None:
            return
        async with self._writing:
            in_flight = self._due_in_flight(hold)
            self._held = len(self._in_flight)
            self._woken = False
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

    def _hold_timer(self) -> None:
        """Come back for held marks after the hold, even if nothing else arrives."""
        self._timer = asyncio.get_running_loop().call_later(
            IN_FLIGHT_HOLD_MS / 1000, self._held_due
        )

    def _held_due(self) -> None:
        self._timer = None
        self._wakeup.set()

    async def _run(self) -> None:
        interval = self._settings.flush_interval_ms / 1000
        while True:
            if self._in_flight and self._timer is None:
                self._hold_timer()
            await self._wakeup.wait()
            self._wakeup.clear()
            await asyncio.sleep(interval)  # let facts accumulate into one batch
            await self._flush(hold=True)
