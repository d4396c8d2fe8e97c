"""Waiting out a ``receive`` that has nothing to hand out."""

from __future__ import annotations

import asyncio
import time


async def sleep_until(deadline: float) -> None:
    """Sleep until ``deadline`` (``time.monotonic()`` seconds); at once if it has passed.

    ``receive`` must use up its ``wait_ms`` when it has nothing (a paused subscription, a
    backend outage), or the dispatcher's loop would spin.
    """
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))
