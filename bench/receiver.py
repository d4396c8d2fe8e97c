"""A fast webhook receiver for benchmarks: raw asyncio HTTP/1.1 with keep-alive.

Run as its own process (``python -m bench.receiver --port N``). Every ``POST /h/<tag>``
is a delivery: it is counted per ``(tag, webhook-id)`` with its receive time
(``time.monotonic()``, the same clock in every process of this machine). In failure mode a
deterministic share of ids is refused (by a CRC32 of the id, so every run and every peer
fails the same ids): 9 % fail their first attempt once (500), 1 % always fail (500).

Control endpoints (tiny JSON):
- ``POST /_bench/reset {"fail": bool}``: forget everything, set the failure mode;
- ``GET /_bench/stats``: counters, cheap enough to poll;
- ``GET /_bench/dump``: ``{"<tag> <id>": [attempts, oks, first_t, first_ok_t]}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import zlib

FAIL_ONCE_PERCENT = 9
ALWAYS_FAIL_PERCENT = 1

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
FAIL = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nfail"
BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbad"


def fate(message_id: str) -> str:
    """``ok``, ``fail_once`` or ``always_fail`` for an id in failure mode (deterministic)."""
    bucket = zlib.crc32(message_id.encode()) % 100
    if bucket < FAIL_ONCE_PERCENT:
        return "fail_once"
    if bucket < FAIL_ONCE_PERCENT + ALWAYS_FAIL_PERCENT:
        return "always_fail"
    return "ok"


class State:
    """Everything the receiver has seen since the last reset."""

    def __init__(self) -> None:
        self.reset(fail=False)

    def reset(self, fail: bool) -> None:
        self.fail = fail
        # key -> [attempts, oks, first_t, first_ok_t]
        self.records: dict[str, list[float]] = {}
        self.requests = 0
        self.oks = 0
        self.unique_ok = 0
        self.first_t = 0.0
        self.last_t = 0.0
        self.last_new_ok_t = 0.0
        self.no_id = 0
        self.always_fail_attempts = 0

    def stats(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "oks": self.oks,
            "unique": len(self.records),
            "unique_ok": self.unique_ok,
            "duplicates": self.oks - self.unique_ok,
            "first_t": self.first_t,
            "last_t": self.last_t,
            "last_new_ok_t": self.last_new_ok_t,
            "no_id": self.no_id,
            "always_fail_attempts": self.always_fail_attempts,
            "fail": self.fail,
        }

    def delivery(self, tag: str, message_id: str) -> bytes:
        now = time.monotonic()
        self.requests += 1
        if self.first_t == 0.0:
            self.first_t = now
        self.last_t = now
        if not message_id:
            self.no_id += 1
            return BAD
        key = f"{tag} {message_id}"
        record = self.records.get(key)
        if record is None:
            record = [0, 0, now, 0.0]
            self.records[key] = record
        record[0] += 1
        if self.fail:
            kind = fate(message_id)
            if kind == "always_fail":
                self.always_fail_attempts += 1
                return FAIL
            if kind == "fail_once" and record[0] == 1:
                return FAIL
        record[1] += 1
        self.oks += 1
        if record[1] == 1:
            record[3] = now
            self.unique_ok += 1
            self.last_new_ok_t = now
        return OK


def _json_reply(payload: object) -> bytes:
    body = json.dumps(payload, separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class ReceiverProtocol(asyncio.Protocol):
    """One keep-alive connection; handles pipelined requests too."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        out = []
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = bytes(self.buffer[:end]).decode("latin-1")
            lines = head.split("\r\n")
            request_line = lines[0].split(" ")
            length = 0
            message_id = ""
            for line in lines[1:]:
                name, _, value = line.partition(":")
                lowered = name.lower()
                if lowered == "content-length":
                    length = int(value)
                elif lowered == "webhook-id":
                    message_id = value.strip()
            total = end + 4 + length
            if len(self.buffer) < total:
                break
            body = bytes(self.buffer[end + 4 : total])
            del self.buffer[:total]
            out.append(self.handle(request_line, message_id, body))
        if out and self.transport is not None:
            self.transport.write(b"".join(out))

    def handle(self, request_line: list[str], message_id: str, body: bytes) -> bytes:
        method = request_line[0]
        path = request_line[1] if len(request_line) > 1 else "/"
        if path.startswith("/h/"):
            return self.state.delivery(path[3:], message_id)
        if path == "/_bench/stats":
            return _json_reply(self.state.stats())
        if path == "/_bench/dump":
            return _json_reply(self.state.records)
        if path == "/_bench/reset" and method == "POST":
            options = json.loads(body or b"{}")
            self.state.reset(fail=bool(options.get("fail", False)))
            return _json_reply({"ok": True})
        if path == "/_bench/ping":
            return _json_reply({"ok": True})
        return self.state.delivery("default", message_id)


async def serve(port: int, ready_file: str | None) -> None:
    state = State()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: ReceiverProtocol(state), "127.0.0.1", port, backlog=1024
    )
    actual = server.sockets[0].getsockname()[1]
    if ready_file:
        with open(ready_file, "w") as handle:  # noqa: ASYNC230 - once, before serving
            handle.write(str(actual))
    async with server:
        await server.serve_forever()


def run_loop(coro: object) -> None:
    """Run with uvloop when it is installed (it is in hookline's venv)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)  # type: ignore[arg-type]
    else:
        uvloop.run(coro)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", default=None)
    args = parser.parse_args()
    run_loop(serve(args.port, args.ready_file))


if __name__ == "__main__":
    main()
