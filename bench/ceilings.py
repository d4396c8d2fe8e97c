"""Raw ceilings: the same deliveries with no hookline in the way, one bare loop per backend.

- ``pyreqwest``: POST N prepared messages to the receiver, ``concurrency`` at a time, with
  the client hookline's sender uses (what the builtin adapter can at best reach: it is
  this loop plus bookkeeping);
- ``aiohttp``: the same loop on aiohttp (the sender's client until issue 12), for comparison;
- ``redis``: N messages pre-loaded in a stream; XREADGROUP, POST, XACK (batched);
- ``rabbitmq``: N persistent messages pre-loaded in a queue; an aio-pika consumer with
  ``prefetch = concurrency``, POST, ack.
The Redis and RabbitMQ loops POST with pyreqwest too.

Run as its own process: ``python -m bench.ceilings KIND --n N --url URL``; it prints one
JSON line ``{"kind", "n", "delivered", "seconds", "rate", "cpu_s"}``. Only the delivery
phase is timed, not the pre-loading.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
import uuid
from typing import Any

import aiohttp

from bench.common import make_data
from bench.receiver import run_loop

UNAVAILABLE_EXIT = 3
"""Exit status when the client library is not installed (the bench reports it, goes on)."""


def envelope(seq: int, run: str) -> tuple[str, bytes]:
    message_id = f"ceil-{run}-{seq}"
    body = {
        "id": message_id,
        "topic": "bench.ceiling",
        "data": make_data(seq),
        "attempt": 1,
        "published_at": int(time.time() * 1000),
    }
    return message_id, json.dumps(body, separators=(",", ":")).encode()


def new_session(concurrency: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency * 2, keepalive_timeout=30),
        headers={"User-Agent": "bench-ceiling"},
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
    )


async def post(session: aiohttp.ClientSession, url: str, message_id: str, body: bytes) -> bool:
    headers = {"Content-Type": "application/json", "webhook-id": message_id}
    async with session.post(url, data=body, headers=headers, allow_redirects=False) as response:
        await response.read()
        return 200 <= response.status < 300


def new_client(concurrency: int) -> Any:
    """A pyreqwest client set up as the sender's (no redirects, no proxy, no decompression)."""
    try:
        from pyreqwest.client import ClientBuilder
    except ImportError:
        print("pyreqwest is not installed (pip install pyreqwest)", file=sys.stderr)
        sys.exit(UNAVAILABLE_EXIT)
    return (
        ClientBuilder()
        .max_connections(concurrency * 2)
        .follow_redirects(False)
        .no_proxy()
        .gzip(False)
        .brotli(False)
        .zstd(False)
        .deflate(False)
        .user_agent("bench-ceiling")
        .build()
    )


async def post_pyreqwest(client: Any, url: str, message_id: str, body: bytes) -> bool:
    response = await (
        client.post(url)
        .header("Content-Type", "application/json")
        .header("webhook-id", message_id)
        .body_bytes(body)
        .build()
        .send()
    )
    await response.bytes()
    return 200 <= int(response.status) < 300


def cpu_now() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def ceiling_aiohttp(n: int, url: str, concurrency: int) -> dict[str, object]:
    run = uuid.uuid4().hex[:8]
    messages = [envelope(i, run) for i in range(n)]
    delivered = 0
    next_index = 0
    async with new_session(concurrency) as session:

        async def worker() -> None:
            nonlocal delivered, next_index
            while next_index < n:
                message_id, body = messages[next_index]
                next_index += 1
                ok = await post(session, url, message_id, body)
                delivered += ok

        cpu = cpu_now()
        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.monotonic() - started
    return {"delivered": delivered, "seconds": seconds, "cpu_s": cpu_now() - cpu}


async def ceiling_pyreqwest(n: int, url: str, concurrency: int) -> dict[str, object]:
    """The same loop on pyreqwest (Rust reqwest/hyper): the fastest client found for issue 12."""
    run = uuid.uuid4().hex[:8]
    messages = [envelope(i, run) for i in range(n)]
    delivered = 0
    next_index = 0
    client = new_client(concurrency)
    async with client:

        async def worker() -> None:
            nonlocal delivered, next_index
            while next_index < n:
                message_id, body = messages[next_index]
                next_index += 1
                delivered += await post_pyreqwest(client, url, message_id, body)

        cpu = cpu_now()
        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.monotonic() - started
    return {"delivered": delivered, "seconds": seconds, "cpu_s": cpu_now() - cpu}


async def ceiling_redis(n: int, url: str, concurrency: int, redis_url: str) -> dict[str, object]:
    from redis.asyncio import Redis

    run = uuid.uuid4().hex[:8]
    stream = f"hookline-bench-ceiling:{run}"
    redis = Redis.from_url(redis_url)
    try:
        pipe = redis.pipeline(transaction=False)
        for i in range(n):
            message_id, body = envelope(i, run)
            pipe.xadd(stream, {"id": message_id, "m": body})
            if len(pipe) >= 1000:
                await pipe.execute()
        await pipe.execute()
        await redis.xgroup_create(stream, "g", id="0")
        delivered = 0
        acks: list[bytes] = []
        in_flight = 0
        ack_wakeup = asyncio.Event()

        async def deliver(client: Any, entry_id: bytes, fields: dict) -> None:
            nonlocal delivered, in_flight
            ok = await post_pyreqwest(client, url, fields[b"id"].decode(), fields[b"m"])
            in_flight -= 1
            if ok:
                acks.append(entry_id)
                ack_wakeup.set()

        async def acker() -> None:
            nonlocal delivered
            while delivered < n:
                await ack_wakeup.wait()
                ack_wakeup.clear()
                batch = acks[:]
                del acks[:]
                if batch:
                    await redis.xack(stream, "g", *batch)
                    delivered += len(batch)

        async with new_client(concurrency) as client:
            cpu = cpu_now()
            started = time.monotonic()
            ack_task = asyncio.create_task(acker())
            tasks: set[asyncio.Task[None]] = set()
            taken = 0
            while taken < n:
                free = concurrency - in_flight
                if free <= 0:
                    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                    continue
                reply = await redis.xreadgroup("g", "c", {stream: ">"}, count=free, block=100)
                for _, entries in reply or []:
                    for entry_id, fields in entries:
                        taken += 1
                        in_flight += 1
                        task = asyncio.create_task(deliver(client, entry_id, fields))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
            await asyncio.wait_for(ack_task, 120)
            seconds = time.monotonic() - started
        return {"delivered": delivered, "seconds": seconds, "cpu_s": cpu_now() - cpu}
    finally:
        await redis.delete(stream)
        await redis.aclose()


async def ceiling_rabbitmq(n: int, url: str, concurrency: int, amqp_url: str) -> dict[str, object]:
    import aio_pika

    run = uuid.uuid4().hex[:8]
    connection = await aio_pika.connect_robust(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(f"hookline-bench-ceiling-{run}", durable=True)
        try:
            for start in range(0, n, 500):
                await asyncio.gather(
                    *(
                        channel.default_exchange.publish(
                            aio_pika.Message(
                                body,
                                message_id=message_id,
                                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            ),
                            routing_key=queue.name,
                        )
                        for message_id, body in (
                            envelope(i, run) for i in range(start, min(n, start + 500))
                        )
                    )
                )
            consume_channel = await connection.channel()
            await consume_channel.set_qos(prefetch_count=concurrency)
            consume_queue = await consume_channel.get_queue(queue.name)
            delivered = 0
            done = asyncio.Event()
            async with new_client(concurrency) as client:

                async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                    nonlocal delivered
                    if await post_pyreqwest(client, url, message.message_id or "", message.body):
                        await message.ack()
                        delivered += 1
                        if delivered >= n:
                            done.set()
                    else:
                        await message.nack(requeue=True)

                cpu = cpu_now()
                started = time.monotonic()
                tag = await consume_queue.consume(on_message)
                await asyncio.wait_for(done.wait(), 300)
                seconds = time.monotonic() - started
                await consume_queue.cancel(tag)
            return {"delivered": delivered, "seconds": seconds, "cpu_s": cpu_now() - cpu}
        finally:
            await queue.delete(if_unused=False, if_empty=False)
    finally:
        await connection.close()


async def main_async(args: argparse.Namespace) -> None:
    if args.kind == "aiohttp":
        result = await ceiling_aiohttp(args.n, args.url, args.concurrency)
    elif args.kind == "pyreqwest":
        result = await ceiling_pyreqwest(args.n, args.url, args.concurrency)
    elif args.kind == "redis":
        result = await ceiling_redis(args.n, args.url, args.concurrency, args.redis_url)
    else:
        result = await ceiling_rabbitmq(args.n, args.url, args.concurrency, args.amqp_url)
    seconds = float(result["seconds"])  # type: ignore[arg-type]
    result.update(kind=args.kind, n=args.n, rate=args.n / seconds if seconds else 0.0)
    print(json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["aiohttp", "pyreqwest", "redis", "rabbitmq"])
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", ""))
    parser.add_argument("--amqp-url", default=os.environ.get("BENCH_AMQP_URL", ""))
    run_loop(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
