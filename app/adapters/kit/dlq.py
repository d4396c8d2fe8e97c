"""Which DLQ entries a request selects, and how a page of them is cut.

``dlq_count``/``dlq_list``/``dlq_redrive``/``dlq_purge`` all take the same selection (a
topic, optionally one subscription, optionally explicit ids, a cursor for listing); one
filter keeps every adapter answering them alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from app.core.models import DlqEntry
from app.core.ports import DlqPage


@dataclass(frozen=True, slots=True)
class DlqFilter:
    """A selection of one topic's DLQ entries (every field None selects everything)."""

    subscription_id: str | None = None
    ids: frozenset[str] | None = None
    after: str | None = None
    """Only entries with a larger id (ids sort by failure time): the listing cursor."""

    @classmethod
    def of(
        cls,
        subscription_id: str | None = None,
        ids: Sequence[str] | None = None,
        after: str | None = None,
    ) -> DlqFilter:
        """The filter of one adapter call's arguments."""
        return cls(subscription_id, None if ids is None else frozenset(ids), after)

    @property
    def everything(self) -> bool:
        """True when no entry is left out (a whole-topic count or purge can take a shortcut)."""
        return self.subscription_id is None and self.ids is None and self.after is None

    def __call__(self, entry: DlqEntry) -> bool:
        """True if ``entry`` is selected."""
        return (
            (self.subscription_id is None or entry.subscription_id == self.subscription_id)
            and (self.ids is None or entry.id in self.ids)
            and (self.after is None or entry.id > self.after)
        )

    def select(self, entries: Iterable[DlqEntry]) -> list[DlqEntry]:
        """The selected entries, in the order given."""
        return [entry for entry in entries if self(entry)]


def first_page(entries: Iterable[DlqEntry], limit: int) -> DlqPage:
    """The oldest ``limit`` of already selected entries, with the cursor to the next page."""
    return DlqPage.first(sorted(entries, key=lambda e: e.id), limit)
