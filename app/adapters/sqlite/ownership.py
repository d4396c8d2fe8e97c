"""Who delivers an ordered subscription: one lease row per subscription in ``owners``.

An instance owns an ``ordering: key`` subscription while its row names it and has not
expired; it renews the row, another instance takes an expired row over. Each ownership
gets its own ``marker`` (process id and a count), written as ``lease_owner`` on the copies
it leases: the owner's next leases skip its own leased copies and take everyone else's
(a previous owner's, even unexpired) first, in publish order (see :mod:`.leases`).
"""

from __future__ import annotations

import itertools
import secrets
import sqlite3

from app.adapters.sqlite.database import Database
from app.core.models import Subscription, now_ms
from app.core.ordering import OWNERSHIP_TTL_MS


class Ownership:
    """claim_order / release_order of the SQLite adapter, and the markers of leases."""

    def __init__(self, database: Database, owner: str) -> None:
        """``owner``: this process's name (``host:pid``); a random tail makes it unique."""
        self._db = database
        self._me = f"{owner}:{secrets.token_hex(4)}"
        self._epochs = itertools.count(1)
        self.markers: dict[str, str] = {}
        """Subscription id -> ``lease_owner`` of this instance's current ownership."""

    def owns(self, subscription_id: str) -> bool:
        """True while this instance owns the subscription (as of its last claim)."""
        return subscription_id in self.markers

    async def claim(self, subscription: Subscription) -> bool:
        """Take the row if free or expired, renew it if ours; True if ours now."""
        sub_id, me, now = subscription.id, self._me, now_ms()

        def job(conn: sqlite3.Connection) -> bool:
            conn.execute(
                "INSERT INTO owners (sub_id, owner, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (sub_id) DO UPDATE SET owner = excluded.owner, "
                "expires_at = excluded.expires_at "
                "WHERE owners.owner = excluded.owner OR owners.expires_at < ?",
                (sub_id, me, now + OWNERSHIP_TTL_MS, now),
            )
            row = conn.execute("SELECT owner FROM owners WHERE sub_id = ?", (sub_id,)).fetchone()
            return row is not None and row[0] == me

        owned = await self._db.write(job)
        if not owned:
            self.markers.pop(sub_id, None)
        elif sub_id not in self.markers:
            self.markers[sub_id] = f"{me}#{next(self._epochs)}"
        return owned

    async def release(self, subscription: Subscription) -> None:
        """Give the row up (another instance may take over at once)."""
        sub_id, me = subscription.id, self._me
        self.markers.pop(sub_id, None)

        def job(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM owners WHERE sub_id = ? AND owner = ?", (sub_id, me))

        await self._db.write(job)
