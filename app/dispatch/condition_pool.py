"""A few evaluator processes for costly conditions, each with a hard time limit.

Conditions with comprehension macros can cost far more than their size suggests, and the
``cel`` package holds the GIL while it evaluates. Those conditions run here, in one of a
few child processes (:mod:`app.dispatch.condition_child`): the event loop stays free, and a
child that runs over its time is killed and replaced. Processes start on first use, so a
deployment without such conditions never starts one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Mapping
from typing import Any

from app.core.conditions import ConditionBudgetError, ConditionEvaluationError

POOL_SIZE = 2
EVAL_TIMEOUT_S = 1.0
_LINE_LIMIT = 1 << 20
_START_TIMEOUT_S = 30.0


def _stdin(process: asyncio.subprocess.Process) -> asyncio.StreamWriter:
    if process.stdin is None:
        raise BrokenPipeError("no stdin")
    return process.stdin


def _stdout(process: asyncio.subprocess.Process) -> asyncio.StreamReader:
    if process.stdout is None:
        raise BrokenPipeError("no stdout")
    return process.stdout


class _Evaluator:
    """One child process, used by one request at a time."""

    def __init__(self) -> None:
        self._process: asyncio.subprocess.Process | None = None

    async def _ensure(self) -> asyncio.subprocess.Process:
        if self._process is None or self._process.returncode is not None:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "app.dispatch.condition_child",
                str(os.getpid()),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=_LINE_LIMIT,
            )
            # Starting (importing cel) is not the condition's time: wait for "ready" first.
            try:
                async with asyncio.timeout(_START_TIMEOUT_S):
                    ready = await _stdout(self._process).readline()
            except TimeoutError:
                ready = b""
            if not ready:
                await self.kill()
                raise ConditionEvaluationError("condition evaluator did not start")
        return self._process

    async def ask(self, request: bytes, timeout_s: float) -> dict[str, Any]:
        """Send one request; kill the process when no answer comes within ``timeout_s``."""
        process = await self._ensure()
        try:
            async with asyncio.timeout(timeout_s):
                stdin = _stdin(process)
                stdin.write(request)
                await stdin.drain()
                line = await _stdout(process).readline()
        except TimeoutError:
            await self.kill()
            raise ConditionBudgetError(
                f"condition exceeded its cost budget: no result within {timeout_s:g} s"
            ) from None
        except (ConnectionError, BrokenPipeError) as exc:
            await self.kill()
            raise ConditionEvaluationError(f"condition evaluator failed: {exc}") from exc
        except BaseException:
            # Cancelled mid-request: its answer would be read by the next one.
            self._kill_now()
            raise
        if not line:
            await self.kill()
            raise ConditionEvaluationError("condition evaluator exited")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def _kill_now(self) -> asyncio.subprocess.Process | None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return None
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        return process

    async def kill(self) -> None:
        """Stop the process (it is started again on the next request)."""
        process = self._kill_now()
        if process is not None:
            await process.wait()


class ConditionPool:
    """Evaluates conditions off the event loop, each within ``timeout_s``."""

    def __init__(self, size: int = POOL_SIZE, timeout_s: float = EVAL_TIMEOUT_S) -> None:
        """``size`` processes at most, started when first needed."""
        self._timeout_s = timeout_s
        self._all = [_Evaluator() for _ in range(size)]
        self._idle: asyncio.Queue[_Evaluator] | None = None

    def _queue(self) -> asyncio.Queue[_Evaluator]:
        if self._idle is None:
            self._idle = asyncio.Queue()
            for evaluator in self._all:
                self._idle.put_nowait(evaluator)
        return self._idle

    async def matches(self, source: str, data: Any, topic: str, headers: Mapping[str, str]) -> bool:
        """Evaluate ``source`` on one message; raises :class:`ConditionEvaluationError`."""
        try:
            request = json.dumps(
                {"source": source, "data": data, "topic": topic, "headers": dict(headers)}
            )
        except (TypeError, ValueError) as exc:
            raise ConditionEvaluationError(f"message cannot be evaluated: {exc}") from exc
        idle = self._queue()
        evaluator = await idle.get()
        try:
            reply = await evaluator.ask(request.encode() + b"\n", self._timeout_s)
        finally:
            idle.put_nowait(evaluator)
        if "error" in reply:
            raise ConditionEvaluationError(str(reply["error"]))
        return bool(reply["ok"])

    async def close(self) -> None:
        """Stop every process."""
        for evaluator in self._all:
            await evaluator.kill()
