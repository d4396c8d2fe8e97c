"""A real HTTP receiver for webhook tests: records every request, answers as scripted."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict


@dataclass(frozen=True)
class Reply:
    """What the receiver answers to one request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay_s: float = 0.0


@dataclass(frozen=True)
class Received:
    """One request as it arrived."""

    path: str
    headers: CIMultiDict[str]
    """Names match in any case, as in HTTP (the client may send ``Webhook-Id``)."""
    body: bytes
    at: float
    status: int = 0
    """The status answered (known when the request arrives: replies are chosen first)."""
    raw_names: tuple[str, ...] = ()
    """Header names exactly as they came on the wire."""

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class Receiver:
    """An aiohttp server on a free loopback port."""

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self._defaults: dict[str, Reply] = {}
        self._received: list[Received] = []
        self._changed = asyncio.Event()
        self._flaky: dict[str, tuple[float, Reply, random.Random]] = {}
        self._rules: dict[str, Callable[[bytes], Reply | None]] = {}

    async def start(self) -> None:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, *replies: Reply) -> None:
        """Answer the next requests on ``path`` with ``replies``, in order."""
        self._scripts[path].extend(replies)

    def default(self, path: str, reply: Reply) -> None:
        """Answer every unscripted request on ``path`` with ``reply``."""
        self._defaults[path] = reply

    def fail_randomly(
        self, path: str, fraction: float, reply: Reply = Reply(500), seed: int = 14
    ) -> None:
        """Answer ``reply`` to a random ``fraction`` of unscripted requests on ``path``
        (seeded: the same sequence of outcomes on every run).
        """
        self._flaky[path] = (fraction, reply, random.Random(seed))

    def rule(self, path: str, decide: Callable[[bytes], Reply | None]) -> None:
        """Answer what ``decide(body)`` returns on ``path`` (None: as if there were no rule)."""
        self._rules[path] = decide

    def requests(self, path: str | None = None) -> list[Received]:
        return [r for r in self._received if path is None or r.path == path]

    async def wait_for(
        self, count: int, path: str | None = None, within_s: float = 10.0
    ) -> list[Received]:
        """Wait until ``count`` requests arrived on ``path``; fail after ``within_s``."""
        deadline = time.monotonic() + within_s
        while True:
            got = self.requests(path)
            if len(got) >= count:
                return got
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"expected {count} requests on {path or 'any path'}, got {len(got)}"
                )
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        at = time.monotonic()
        script = self._scripts.get(request.path)
        flaky = self._flaky.get(request.path)
        rule = self._rules.get(request.path)
        ruled = rule(body) if rule is not None else None
        if ruled is not None:
            reply = ruled
        elif script:
            reply = script.popleft()
        elif flaky is not None and flaky[2].random() < flaky[0]:
            reply = flaky[1]
        else:
            reply = self._defaults.get(request.path, Reply())
        self._received.append(
            Received(
                request.path,
                CIMultiDict(request.headers),
                body,
                at,
                reply.status,
                tuple(name.decode("latin-1") for name, _ in request.raw_headers),
            )
        )
        self._changed.set()
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)  # the scripted slowness under test
        return web.Response(status=reply.status, headers=reply.headers, body=reply.body)
