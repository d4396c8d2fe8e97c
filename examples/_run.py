"""Serve an example's triggers next to ``make run``: register, run its demo, keep serving.

``python -m examples.<name> [--port 3000] [--exit-after SECONDS]``; hookline's address
comes from ``HOOKLINE_URL`` (default ``http://127.0.0.1:8080``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Awaitable, Callable

import uvicorn
from hookline import AsyncClient, Triggers

Demo = Callable[[AsyncClient], Awaitable[None]]


def main(triggers: Triggers, demo: Demo) -> None:
    """Parse the command line, serve, run ``demo`` once the triggers are registered."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    parser.add_argument("--exit-after", type=float, default=None, help="seconds, then stop")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    os.environ.setdefault("HOOKLINE_PUBLIC_URL", f"http://{args.host}:{args.port}")
    asyncio.run(serve(triggers, demo, args.host, args.port, args.exit_after))


async def serve(
    triggers: Triggers, demo: Demo, host: str, port: int, exit_after: float | None
) -> None:
    """Serve the triggers' app (its start-up registers them), then run ``demo``."""
    config = uvicorn.Config(triggers.asgi_app(), host=host, port=port, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            return await task
        await asyncio.sleep(0.05)
    async with triggers.client() as client:
        await demo(client)
    if exit_after is not None:
        await asyncio.sleep(exit_after)
        server.should_exit = True
    await task
    return None
