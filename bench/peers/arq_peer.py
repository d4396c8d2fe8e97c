"""arq (asyncio + Redis) as a webhook queue, run inside the bench's own arq venv.

The job POSTs the message to the receiver with aiohttp; a non-2xx answer or a connection
error is retried (``Retry(defer=...)``) up to ``max_retries`` retries after the first try,
then the job fails. Configured from the environment like the Celery peer
(``BENCH_BROKER``, ``BENCH_QUEUE``, ``BENCH_RECEIVER``, ``BENCH_RETRY_S``, ``BENCH_MAX_JOBS``).

``python -m bench.peers.arq_peer produce --n N --run RUN`` enqueues N jobs;
``python -m bench.peers.arq_peer work`` runs a burst worker that exits once the queue is empty.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any

import aiohttp
from arq import Retry, Worker, create_pool
from arq.connections import RedisSettings
from arq.worker import func

from bench.common import make_data

BROKER = os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/14")
QUEUE = os.environ.get("BENCH_QUEUE", "arq:bench")
RECEIVER = os.environ.get("BENCH_RECEIVER", "http://127.0.0.1:9/h/arq")
RETRY_S = float(os.environ.get("BENCH_RETRY_S", "0.1"))
MAX_RETRIES = int(os.environ.get("BENCH_MAX_RETRIES", "2"))
MAX_JOBS = int(os.environ.get("BENCH_MAX_JOBS", "64"))


async def startup(ctx: dict[str, Any]) -> None:
    ctx["session"] = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=MAX_JOBS * 2), auto_decompress=False
    )


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["session"].close()


async def deliver(ctx: dict[str, Any], message_id: str, body: str) -> None:
    """POST one message; failures retry with a delay, then the job fails."""
    headers = {"Content-Type": "application/json", "webhook-id": message_id}
    try:
        async with ctx["session"].post(RECEIVER, data=body.encode(), headers=headers) as response:
            await response.read()
            ok = 200 <= response.status < 300
    except aiohttp.ClientError:
        ok = False
    if not ok:
        if ctx["job_try"] <= MAX_RETRIES:
            raise Retry(defer=RETRY_S)
        raise RuntimeError(f"{message_id}: retries exhausted")


async def produce(n: int, run: str, first: int = 0) -> None:
    started = time.monotonic()
    pool = await create_pool(RedisSettings.from_dsn(BROKER))
    try:
        for start in range(first, first + n, 200):
            jobs = []
            for seq in range(start, min(first + n, start + 200)):
                message_id = f"arq-{run}-{seq}"
                body = json.dumps(
                    {"id": message_id, "topic": "bench.peer", "data": make_data(seq), "attempt": 1},
                    separators=(",", ":"),
                )
                jobs.append(
                    pool.enqueue_job(
                        "deliver", message_id, body, _job_id=message_id, _queue_name=QUEUE
                    )
                )
            await asyncio.gather(*jobs)
    finally:
        await pool.aclose()
    print(json.dumps({"produced": n, "seconds": time.monotonic() - started}), flush=True)


def work() -> None:
    worker = Worker(
        functions=[func(deliver, name="deliver", max_tries=MAX_RETRIES + 1)],
        redis_settings=RedisSettings.from_dsn(BROKER),
        queue_name=QUEUE,
        max_jobs=MAX_JOBS,
        burst=True,
        keep_result=0,
        poll_delay=0.05,
        on_startup=startup,
        on_shutdown=shutdown,
        handle_signals=True,
    )
    worker.run()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["produce", "work"])
    parser.add_argument("--n", type=int, default=0)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--run", default="")
    args = parser.parse_args()
    if args.command == "produce":
        asyncio.run(produce(args.n, args.run, args.first))
    else:
        work()
