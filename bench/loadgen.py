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
    unanswered: int = 0
    seconds: float = 0.0
    # message id -> monotonic time the request was due (the latency clock starts there)
    sent_at: dict[str, float] = field(default_factory=dict)
    # message id -> monotonic time its 202 arrived
    answered_at: dict[str, float] = field(default_factory=dict)
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
    max_connections: int = 256,
    drain_s: float = 30.0,
) -> OpenLoopResult:
    """POST at ``rate`` per second for ``seconds``; remember when each id was due.

    A request whose time has come takes an idle connection, or opens one (up to
    ``max_connections``), or waits for one: that wait counts in its latency, since the clock
    starts when the request was due, not when it could be written (no coordinated omission).
    ``lag_ms`` is how late the generator itself woke up.
    """
    result = OpenLoopResult()
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(initial_connections):
        idle.put_nowait(await Connection.open(host, port))
    result.connections = initial_connections
    total = int(rate * seconds)
    pending: set[asyncio.Task[None]] = set()
    everyone: list[Connection] = []

    async def one(seq: int, due: float) -> None:
        if idle.empty() and result.connections < max_connections:
            result.connections += 1
            connection = await Connection.open(host, port)
            everyone.append(connection)
        else:
            connection = await idle.get()
        raw = build_request("POST", host, port, path, make_body(seq))
        try:
            status, body = await connection.request(raw)
        except HttpError:
            result.errors += 1
            return
        idle.put_nowait(connection)
        if status != 202:
            result.errors += 1
            return
        message_id = json.loads(body)["id"]
        result.sent_at[message_id] = due
        result.answered_at[message_id] = time.monotonic()

    started = time.monotonic()
    for seq in range(total):
        due = started + seq / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        result.lag_ms.append(max(0.0, (time.monotonic() - due) * 1000))
        task = asyncio.create_task(one(seq, due))
        pending.add(task)
        task.add_done_callback(pending.discard)
        result.sent += 1
    if pending:
        _, still = await asyncio.wait(pending, timeout=drain_s)
        result.unanswered = len(still)
        for task in still:
            task.cancel()
    result.seconds = time.monotonic() - started
    while not idle.empty():
        idle.get_nowait().close()
    for connection in everyone:
        connection.close()
    return result
