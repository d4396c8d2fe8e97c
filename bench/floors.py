"""The floors of issue 12: what one core does with no hookline in the way, measured in-run.

- publish floor: :mod:`bench.floor_app` (raw ASGI on uvicorn with uvloop + httptools,
  msgspec decoding, a fixed 202) under the publish scenario's closed loops;
- delivery floor: bare client loops (:mod:`bench.ceilings` ``aiohttp`` and ``pyreqwest``)
  POSTing the same 1 KB bodies to the same receiver, 64 concurrent.

In pinned mode both run on hookline's core, so hookline's figures divide by them.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from bench.common import PYTHON, cpu_seconds, free_port, on_server_core
from bench.loadgen import closed_loop
from bench.rawhttp import Connection, build_request
from bench.scenarios import Context, bare_loop, batch_bodies, message_bodies
from bench.service import UnavailableError

DELIVERY_CLIENTS = ("aiohttp", "pyreqwest")


async def publish_floor(ctx: Context) -> dict[str, Any]:
    """The raw ASGI + msgspec app under the publish scenario's load (single, then batch)."""
    sizes = ctx.sizes
    port = free_port()
    argv = on_server_core([PYTHON, "-m", "bench.floor_app", "--port", str(port)])
    process = await ctx.processes.start("floor-app", argv)
    try:
        for _ in range(400):
            with contextlib.suppress(OSError):
                probe = await Connection.open("127.0.0.1", port)
                probe.close()
                break
            if process.returncode is not None:
                break
            await asyncio.sleep(0.05)
        else:
            raise UnavailableError("the floor app did not start")
        if process.returncode is not None:
            raise UnavailableError(f"floor app: {ctx.processes.log_tail('floor-app')[-300:]}")
        path = "/v1/topics/bench.floor/messages"
        singles = [build_request("POST", "127.0.0.1", port, path, b) for b in message_bodies(200)]
        batches = [
            build_request("POST", "127.0.0.1", port, f"{path}/batch", b)
            for b in batch_bodies(8, 100)
        ]
        await closed_loop("127.0.0.1", port, singles, 1, 8, 500, 5)
        cpu0 = cpu_seconds(process.pid)
        single = await closed_loop(
            "127.0.0.1",
            port,
            singles,
            1,
            sizes.publish_concurrency,
            sizes.publish_single_n,
            sizes.publish_seconds,
        )
        cpu1 = cpu_seconds(process.pid)
        batch = await closed_loop(
            "127.0.0.1",
            port,
            batches,
            100,
            sizes.batch_concurrency,
            sizes.publish_batch_n,
            sizes.publish_seconds,
        )
        cpu2 = cpu_seconds(process.pid)
    finally:
        await ctx.processes.stop(process, grace_s=5)
    return {
        "single_rate": single.rate,
        "batch_rate": batch.rate,
        "single_cpu_per_1k": (cpu1 - cpu0) / max(1, single.messages) * 1000,
        "batch_cpu_per_1k": (cpu2 - cpu1) / max(1, batch.messages) * 1000,
        "errors": single.errors + batch.errors,
    }


async def floors(ctx: Context) -> dict[str, Any]:
    """Both floors; a client library that is not installed is reported, not fatal."""
    result: dict[str, Any] = {"lost": []}
    try:
        result["publish"] = await publish_floor(ctx)
    except UnavailableError as exc:
        result["publish"] = {"unavailable": str(exc)}
    delivery: dict[str, Any] = {}
    for client in DELIVERY_CLIENTS:
        try:
            delivery[client] = await bare_loop(ctx, client, ctx.sizes.drain_n)
        except UnavailableError as exc:
            delivery[client] = {"unavailable": str(exc)}
    result["delivery"] = delivery
    return result
