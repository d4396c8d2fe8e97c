"""Script calls issued together share one round trip to Redis.

Single publishes arrive as separate HTTP requests, and a worker's lease and its acks, the
due-time timer and the rate limiter all call scripts; under load many calls reach the
adapter in the same event-loop turn. The first call of a turn schedules a flush for the
next turn (``call_soon``: no timer); the flush writes every call queued meanwhile as one
buffer on the adapter's multiplexed connection (:mod:`.mux`) right there, and a callback
hands each caller its own reply as they arrive (no task: a caller that is cancelled
cancels nobody else's call).
Each call is still its own script, atomic on its own, and fails on its own: a per-call
error (``NOSCRIPT``, out of memory, ``MISCONF``) is retried alone through
:meth:`RedisConnection.run`, which also maps it to the adapter's errors; a failed round
trip fails every call of the buffer with the same mapped error.

Where the multiplexed connection does not go (TLS) the calls of a turn go out as one
redis-py pipeline instead; a Redis Cluster client is not pipelined (a script's keys pin it
to one slot): calls go one by one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from redis import exceptions as rexc
from redis.asyncio import Redis

from app.adapters.redis.connection import LuaScript, RedisConnection
from app.adapters.redis.mux import RedisMux, pack, supported


@dataclass(slots=True)
class _Call:
    script: LuaScript
    keys: Sequence[str]
    args: Sequence[Any]
    reply: asyncio.Future[Any]


def _packed(calls: list[_Call]) -> tuple[list[_Call], bytes]:
    """The calls that could be encoded, and their commands as one buffer; a call whose
    arguments cannot be encoded gets its error now.
    """
    sent: list[_Call] = []
    parts: list[bytes] = []
    for call in calls:
        try:
            parts.append(pack(["EVALSHA", call.script.sha, len(call.keys), *call.keys, *call.args]))
        except Exception as exc:  # noqa: BLE001 - handed to the caller
            if not call.reply.done():
                call.reply.set_exception(exc)
        else:
            sent.append(call)
    return sent, b"".join(parts)


class ScriptCoalescer:
    """Runs scripts like :meth:`RedisConnection.run`, pipelining calls of one loop turn."""

    def __init__(self, connection: RedisConnection) -> None:
        """Calls go through ``connection``'s settings (mux) or client (pipeline)."""
        self._conn = connection
        self._mux = RedisMux(connection.settings) if supported(connection.settings) else None
        self._queued: list[_Call] = []
        self._sending: set[asyncio.Task[None]] = set()
        self.round_trips = 0
        """Buffers or pipelines sent (tests and benchmarks: calls per round trip)."""

    async def run(self, script: LuaScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """``script`` on ``keys``; its reply, or its error, as if run alone."""
        if not isinstance(self._conn.client, Redis):
            return await self._conn.run(script, keys, args)
        return await self.submit(script, keys, args)

    def submit(
        self, script: LuaScript, keys: Sequence[str], args: Sequence[Any]
    ) -> asyncio.Future[Any]:
        """Queue a call for the next flush; its future gets the reply or the error."""
        loop = asyncio.get_running_loop()
        call = _Call(script, keys, args, loop.create_future())
        self._queued.append(call)
        if len(self._queued) == 1:
            loop.call_soon(self._flush)  # the other requests of this loop turn join
        return call.reply

    def _flush(self) -> None:
        calls, self._queued = self._queued, []
        if self._mux is not None:
            calls, packed = _packed(calls)
            if not calls:
                return
            replies = self._mux.send(packed, len(calls))
            if replies is not None:  # connected: written now, handed out as they come
                self.round_trips += 1
                replies.add_done_callback(lambda done: self._hand_out(calls, done))
                return
        self._spawn(self._send(calls))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    def _hand_out(self, calls: list[_Call], done: asyncio.Future[list[Any]]) -> None:
        """Each caller its reply; error replies retried alone (in a task: rare)."""
        error = (
            rexc.ConnectionError("redis call abandoned") if done.cancelled() else done.exception()
        )
        if error is not None:
            mapped = self._conn.mapped(error)
            for call in calls:
                if not call.reply.done():
                    call.reply.set_exception(mapped)
            return
        retry = self._settle(calls, done.result())
        if retry:
            self._spawn(self._retry_alone(retry))

    def _settle(self, calls: list[_Call], replies: list[Any]) -> list[_Call]:
        """Hand out the replies; the calls whose reply was an error, to retry alone."""
        retry = []
        for call, reply in zip(calls, replies, strict=True):
            if isinstance(reply, Exception):
                retry.append(call)
            elif not call.reply.done():
                call.reply.set_result(reply)
        return retry

    async def _retry_alone(self, calls: list[_Call]) -> None:
        for call in calls:
            await self._alone(call)

    async def _send(self, calls: list[_Call]) -> None:
        self.round_trips += 1
        try:
            with self._conn.translate():
                replies = await self._round_trip(calls)
        except Exception as exc:  # noqa: BLE001 - every caller gets the mapped error
            for call in calls:
                if not call.reply.done():
                    call.reply.set_exception(exc)
            return
        await self._retry_alone(self._settle(calls, replies))

    async def _round_trip(self, calls: list[_Call]) -> list[Any]:
        """Every call's reply, an error reply in its place (not raised)."""
        if self._mux is not None:
            sent, packed = _packed(calls)
            if len(sent) < len(calls):  # a call that cannot be encoded fails on its own
                raise rexc.DataError("a script argument cannot be encoded")
            return await self._mux.execute(packed, len(calls))
        pipe = self._conn.client.pipeline(transaction=False)
        for call in calls:
            pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
        return list(await pipe.execute(raise_on_error=False))

    async def _alone(self, call: _Call) -> None:
        try:
            reply = await self._conn.run(call.script, call.keys, call.args)
        except Exception as exc:  # noqa: BLE001 - handed to the caller
            if not call.reply.done():
                call.reply.set_exception(exc)
        else:
            if not call.reply.done():
                call.reply.set_result(reply)

    async def close(self) -> None:
        """Close the multiplexed connection (calls in flight fail)."""
        if self._mux is not None:
            await self._mux.close()
