"""Load generators: closed loop for peak publish throughput, open loop for latency.

Closed loop: ``concurrency`` connections, each sends its next request as soon as the last
one is answered; the figure is answered messages per second. Open loop: requests leave at
a fixed arrival rate whatever the server does (a new connection is opened when all are
busy), so a slow period shows up in the latencies instead of slowing the load down.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.rawhttp import Connection, HttpError, build_request


@dataclass
class ClosedLoopResult:
    requests: int = 0
    messages: int = 0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


async def closed_loop(
    host: str,
    port: int,
    requests: list[bytes],
    per_request: int,
    concurrency: int,
    max_messages: int,
    max_seconds: float,
    ok: int = 202,
) -> ClosedLoopResult:
    """Send prepared requests (round robin) until ``max_messages`` or ``max_seconds``."""
    result = ClosedLoopResult()
    stop_at = time.monotonic() + max_seconds
    budget = max_messages // per_request

    async def worker(connection: Connection, offset: int) -> None:
        nonlocal budget
        index = offset
        while budget > 0 and time.monotonic() < stop_at:
            budget -= 1
            status, _ = await connection.request(requests[index % len(requests)])
            index += concurrency
            result.requests += 1
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if status == ok:
                result.messages += per_request
            else:
                result.errors += 1

    connections = [await Connection.open(host, port) for _ in range(concurrency)]
    started = time.monotonic()
    try:
        await asyncio.gather(*(worker(c, i) for i, c in enumerate(connections)))
    finally:
        result.seconds = time.monotonic() - started
        for connection in connections:
            connection.close()
    return result


@dataclass
class OpenLoopResult:
    sent: int = 0
    errors: int = 0
    seconds: float = 0.0
    # message id -> monotonic time the request was written
    sent_at: dict[str, float] = field(default_factory=dict)
    lag_ms: list[float] = field(default_factory=list)
    connections: int = 0


async def open_loop(
    host: str,
    port: int,
    path: str,
    make_body: Callable[[int], bytes],
    rate: float,
    seconds: float,
    initial_connections: int = 16,
) -> OpenLoopResult:
    """POST at ``rate`` per second for ``seconds``; remember when each id was sent."""
    result = OpenLoopResult()
    idle: list[Connection] = [await Connection.open(host, port) for _ in range(initial_connections)]
    result.connections = len(idle)
    total = int(rate * seconds)
    pending: set[asyncio.Task[None]] = set()

    async def one(seq: int) -> None:
        connection = idle.pop() if idle else None
        if connection is None:
            connection = await Connection.open(host, port)
            result.connections += 1
        raw = build_request("POST", host, port, path, make_body(seq))
        written = time.monotonic()
        try:
            status, body = await connection.request(raw)
        except HttpError:
            result.errors += 1
            return
        idle.append(connection)
        if status != 202:
            result.errors += 1
            return
        result.sent_at[json.loads(body)["id"]] = written

    started = time.monotonic()
    for seq in range(total):
        due = started + seq / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        result.lag_ms.append(max(0.0, (time.monotonic() - due) * 1000))
        task = asyncio.create_task(one(seq))
        pending.add(task)
        task.add_done_callback(pending.discard)
        result.sent += 1
    if pending:
        await asyncio.wait(pending, timeout=30)
    result.seconds = time.monotonic() - started
    for connection in idle:
        connection.close()
    return result
