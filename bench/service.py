"""One ``hookline serve`` process per scenario, and the few API calls the bench makes.

A fresh process per scenario keeps figures apart: its peak RSS (VmHWM) and CPU time belong
to that scenario alone. Each Redis/RabbitMQ run gets its own key prefix / name prefix and
deletes what it created afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.common import PYTHON, Processes, cpu_seconds, free_port, memory_mb, on_server_core

REDIS_URL = "redis://127.0.0.1:6379/13"
"""Redis db 13 is the bench's own; keys are still under a unique prefix per run."""
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"

HOOKLINE_DIR: dict[str, Path | None] = {"path": None}
"""``--hookline-dir``: run ``app`` from another checkout (to measure a proposed change)."""

ADAPTER_CLASSES = {
    "builtin": "modules::queue::BuiltinQueueAdapter",
    "redis": "modules::queue::RedisAdapter",
    "rabbitmq": "modules::queue::RabbitMQAdapter",
    "sqlite": "modules::queue::SqliteAdapter",
    "sqlite-full": "modules::queue::SqliteAdapter",
}
SQLITE_SYNCHRONOUS = {"sqlite": "normal", "sqlite-full": "full"}
"""``sqlite`` runs with ``synchronous: normal``, ``sqlite-full`` with ``full``."""
SQLITE_DIR = Path(__file__).parent / "results" / "sqlite"
"""On the disk the results go to (not /tmp, which may live in memory); removed after use."""


WORKERS: dict[str, int] = {"n": 1}
"""``--workers N``: ``hookline serve --workers N`` for the Redis and RabbitMQ adapters."""


def children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (uvicorn's workers under ``--workers N``)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


class UnavailableError(Exception):
    """A scenario cannot run here (adapter missing, broker down); reported, not fatal."""


@dataclass
class AdapterSetup:
    kind: str
    config: dict[str, Any]
    prefix: str = ""


def adapter_setup(kind: str, run_id: str) -> AdapterSetup:
    """The adapter's ``config:`` block with a prefix unique to this run."""
    prefix = f"hookline-bench-{run_id}"
    if kind == "redis":
        return AdapterSetup(kind, {"redis_url": REDIS_URL, "key_prefix": prefix}, prefix)
    if kind == "rabbitmq":
        return AdapterSetup(kind, {"amqp_url": AMQP_URL, "prefix": prefix}, prefix)
    if kind in SQLITE_SYNCHRONOUS:  # a fresh file per scenario, deleted afterwards
        path = SQLITE_DIR / f"{prefix}-{uuid.uuid4().hex[:8]}" / "hookline.db"
        config = {"path": str(path), "synchronous": SQLITE_SYNCHRONOUS[kind]}
        return AdapterSetup(kind, config, str(path.parent))
    return AdapterSetup(kind, {"max_messages": 10_000_000, "max_bytes": 16 * 1024**3})


def check_adapter_importable(kind: str) -> None:
    """Raise :class:`UnavailableError` when the adapter's code is not there (yet)."""
    if kind == "builtin":
        return
    from app.adapters.factory import build_adapter

    setup = adapter_setup(kind, "probe")
    try:
        build_adapter(ADAPTER_CLASSES[kind], setup.config)
    except Exception as exc:
        raise UnavailableError(
            f"{kind} adapter cannot be built: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        if kind in SQLITE_SYNCHRONOUS:
            shutil.rmtree(setup.prefix, ignore_errors=True)


@dataclass
class Hookline:
    """A running hookline process and an HTTP client for its API."""

    processes: Processes
    setup: AdapterSetup
    workdir: Path
    name: str
    port: int = 0
    extra_config: dict[str, Any] = field(default_factory=dict)
    process: asyncio.subprocess.Process | None = None
    client: httpx.AsyncClient = field(init=False)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        config = {
            "adapter": {"class": ADAPTER_CLASSES[self.setup.kind], "config": self.setup.config},
            "delivery": {"allow_private_networks": True},
            "limits": {"max_body_bytes": 16 * 1024 * 1024, "max_batch": 1000},
            "logging": {"level": "warning"},
            **self.extra_config,
        }
        doc = {"modules": [{"class": "modules::queue::QueueModule", "config": config}]}
        path = self.workdir / f"{self.name}.yaml"
        path.write_text(yaml.safe_dump(doc))
        self.port = free_port()
        argv = [PYTHON, "-m", "app.cli", "serve", "--config", str(path), "--port", str(self.port)]
        if WORKERS["n"] > 1 and self.setup.kind != "builtin":
            argv += ["--workers", str(WORKERS["n"])]
        argv = on_server_core(argv)
        other = HOOKLINE_DIR["path"]
        env = {"PYTHONPATH": str(other)} if other else None
        self.process = await self.processes.start(self.name, argv, env=env, cwd=other)
        self.client = httpx.AsyncClient(base_url=self.url, timeout=60)
        for _ in range(600):
            if self.process.returncode is not None:
                break
            with contextlib.suppress(httpx.HTTPError):
                if (await self.client.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.05)
        tail = self.processes.log_tail(self.name)
        await self.stop()
        raise UnavailableError(f"hookline ({self.setup.kind}) did not become ready: {tail[-400:]}")

    async def stop(self) -> None:
        if self.process is not None:
            await self.processes.stop(self.process, grace_s=15)
        with contextlib.suppress(Exception):
            await self.client.aclose()

    def cpu(self) -> float:
        """CPU seconds of the process and of its live children (``--workers N``)."""
        return cpu_seconds(self.pid) + sum(cpu_seconds(child) for child in children(self.pid))

    def memory(self) -> tuple[float, float]:
        return memory_mb(self.pid)

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.client.request(method, path, **kwargs)
        if response.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response.json() if response.content else None

    async def subscribe(
        self,
        topic: str,
        url: str,
        *,
        paused: bool,
        max_in_flight: int,
        retry: dict[str, Any] | None = None,
        sub_id: str | None = None,
        ordering: str | None = None,
    ) -> str:
        body: dict[str, Any] = {
            "id": sub_id or f"bench-{uuid.uuid4().hex[:10]}",
            "topic": topic,
            "url": url,
            "paused": paused,
            "max_in_flight": max_in_flight,
        }
        if retry:
            body["retry"] = retry
        if ordering:
            body["ordering"] = ordering
        created = await self.call("POST", "/v1/subscriptions", json=body)
        return str(created["id"])

    async def resume(self, sub_id: str) -> None:
        await self.call("POST", f"/v1/subscriptions/{sub_id}/resume")

    async def delete_subscription(self, sub_id: str) -> None:
        with contextlib.suppress(Exception):
            await self.client.delete(f"/v1/subscriptions/{sub_id}")

    async def publish_batches(
        self,
        topic: str,
        messages: list[dict[str, Any]],
        batch: int = 1000,
        parallel: int = 2,
        keys: int | None = None,
    ) -> list[str]:
        """Publish through the batch API; returns the ids in order.

        ``keys``: message ``i`` gets ``ordering_key`` ``k{i % keys}``.
        """
        chunks = [messages[i : i + batch] for i in range(0, len(messages), batch)]
        ids: list[list[str]] = [[] for _ in chunks]
        semaphore = asyncio.Semaphore(parallel)

        async def send(index: int) -> None:
            first = index * batch
            body = json.dumps(
                {
                    "messages": [
                        {"data": d, "ordering_key": f"k{(first + j) % keys}"}
                        if keys
                        else {"data": d}
                        for j, d in enumerate(chunks[index])
                    ]
                }
            )
            async with semaphore:
                reply = await self.call(
                    "POST",
                    f"/v1/topics/{topic}/messages/batch",
                    content=body,
                    headers={"Content-Type": "application/json"},
                )
            ids[index] = [r["id"] for r in reply["results"]]

        await asyncio.gather(*(send(i) for i in range(len(chunks))))
        return [i for chunk in ids for i in chunk]

    async def dlq_message_ids(self, topic: str) -> list[str]:
        found: list[str] = []
        cursor: str | None = None
        for _ in range(10_000):
            params: dict[str, Any] = {"limit": 1000}
            if cursor:
                params["cursor"] = cursor
            page = await self.call("GET", f"/v1/topics/{topic}/dlq", params=params)
            found.extend(e["message_id"] for e in page["entries"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return found


async def cleanup_backend(setup: AdapterSetup) -> str:
    """Delete what a Redis/RabbitMQ run created under its prefix; returns a short note."""
    if setup.kind == "redis":
        from redis.asyncio import Redis

        redis = Redis.from_url(REDIS_URL)
        deleted = 0
        try:
            keys = [k async for k in redis.scan_iter(match=f"{setup.prefix}:*", count=1000)]
            for key in keys:
                deleted += int(await redis.delete(key))
        finally:
            await redis.aclose()
        return f"deleted {deleted} redis keys"
    if setup.kind == "rabbitmq":
        return await _cleanup_rabbitmq(setup.prefix)
    if setup.kind in SQLITE_SYNCHRONOUS:
        shutil.rmtree(setup.prefix, ignore_errors=True)
        return f"deleted {setup.prefix}"
    return ""


async def _cleanup_rabbitmq(prefix: str) -> str:
    rabbitmqctl = shutil.which("rabbitmqctl")
    if rabbitmqctl is None:
        return "rabbitmqctl not found: queues under the prefix were left"
    names: dict[str, list[str]] = {}
    for what in ("queues", "exchanges"):
        process = await asyncio.create_subprocess_exec(
            rabbitmqctl,
            "-q",
            f"list_{what}",
            "name",
            "--no-table-headers",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await asyncio.wait_for(process.communicate(), 60)
        names[what] = [n for n in out.decode().split() if n.startswith(prefix)]
    import aio_pika

    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    try:
        # One channel, reopened only when a failed delete closed it: a channel per name
        # would hit channel_max (2047) with thousands of subscription queues.
        for what, names_of in (("queue", names["queues"]), ("exchange", names["exchanges"])):
            for name in names_of:
                if channel.is_closed:
                    channel = await connection.channel()
                with contextlib.suppress(Exception):
                    if what == "queue":
                        await channel.queue_delete(name)
                    else:
                        await channel.exchange_delete(name)
    finally:
        await connection.close()
    return f"deleted {len(names['queues'])} queues, {len(names['exchanges'])} exchanges"
