"""Issue 12: ``hookline serve`` writes a short answer's head and body with one write.

:class:`app.api.http_server.CoalescingCycle` holds the head until the body; these read the
raw bytes of a real server to check that nothing else changed: keep-alive, pipelined
requests answered in order, ``HEAD`` (a head and no body), ``Connection: close``, errors.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from uvicorn.protocols.http.flow_control import FlowControl

from app.api.http_server import CoalescingCycle
from tests.process import ServeProcess, write_config

POST = (
    b"POST /v1/topics/t/messages HTTP/1.1\r\nHost: x\r\n"
    b"Content-Type: application/json\r\nContent-Length: 11\r\n\r\n"
    b'{"data": 1}'
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    tmp: Path = tmp_path_factory.mktemp("one-write")
    config = write_config(tmp / "config.yaml", "modules::queue::BuiltinQueueAdapter", {})
    serving = ServeProcess(config, tmp / "serve.log", env={"OTEL_SDK_DISABLED": "true"})
    try:
        serving.wait_ready()
        yield serving
    finally:
        serving.close()


def exchange(
    server: ServeProcess, request: bytes, answers: int, bodiless: bool = False
) -> list[bytes]:
    """Send ``request`` on one connection; read ``answers`` complete responses (and check
    that nothing more came)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(request)
        data = b""
        responses: list[bytes] = []
        while len(responses) < answers:
            head_end = data.find(b"\r\n\r\n")
            if head_end >= 0:
                head = data[:head_end].decode("latin-1").lower()
                length = 0
                if not bodiless and "content-length:" in head:
                    length = int(head.split("content-length:")[1].split("\r\n")[0])
                end = head_end + 4 + length
                if len(data) >= end:
                    responses.append(data[:end])
                    data = data[end:]
                    continue
            chunk = conn.recv(65536)
            assert chunk, (responses, data)
            data += chunk
        assert data == b"", data
        return responses


def status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


async def test_answers_keep_alive_pipelined_and_in_order(server: ServeProcess) -> None:
    health = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    answers = await asyncio.to_thread(exchange, server, POST + health + POST + health, 4)
    assert [status(a) for a in answers] == [202, 200, 202, 200]
    assert answers[0].endswith(b'"duplicate":false}')
    assert answers[1].endswith(b'{"status":"ok"}')


async def test_a_head_request_gets_its_head_alone(server: ServeProcess) -> None:
    request = b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    answers = await asyncio.to_thread(exchange, server, request + request, 2, True)
    assert answers[0] == answers[1]
    answer = answers[0]
    assert answer.startswith(b"HTTP/1.1 ")
    assert answer.endswith(b"\r\n\r\n")


async def test_connection_close_and_errors_still_answer(server: ServeProcess) -> None:
    bad = (
        b"POST /v1/topics/t/messages HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 3\r\nConnection: close\r\n\r\n{x}"
    )
    [answer] = await asyncio.to_thread(exchange, server, bad, 1)
    assert status(answer) == 422
    assert b"connection: close" in answer.lower()
    assert b'"validation_error"' in answer


class Recorded:
    """A transport that records what is written to it."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> None:
        return None


def cycle(transport: Recorded, method: str = "POST", keep_alive: bool = True) -> CoalescingCycle:
    scope: Any = {"method": method, "type": "http", "path": "/"}
    return CoalescingCycle(
        scope=scope,
        transport=transport,  # type: ignore[arg-type]
        flow=FlowControl(transport),  # type: ignore[arg-type]
        logger=logging.getLogger("test"),
        access_logger=logging.getLogger("test"),
        access_log=False,
        default_headers=[],
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=keep_alive,
        on_response=lambda: None,
    )


START: Any = {"type": "http.response.start", "status": 202, "headers": [(b"content-length", b"2")]}
BODY: Any = {"type": "http.response.body", "body": b"ok"}


async def test_the_head_is_held_until_the_body() -> None:
    transport = Recorded()
    await cycle(transport).send(START)
    assert transport.writes == []


async def cycle_send(transport: Recorded, *messages: Any, method: str = "POST") -> None:
    one = cycle(transport, method)
    for message in messages:
        await one.send(message)
    assert one.response_complete


async def test_one_write_per_answer_and_heads_alone_for_head_requests() -> None:
    transport = Recorded()
    await cycle_send(transport, START, BODY)
    assert transport.writes == [b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\nok"]
    head_only = Recorded()
    await cycle_send(head_only, START, BODY, method="HEAD")
    assert head_only.writes == [b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n"]


async def test_a_streamed_answer_sends_its_head_with_the_first_chunk_only() -> None:
    transport = Recorded()
    start: Any = {"type": "http.response.start", "status": 200, "headers": []}
    first: Any = {"type": "http.response.body", "body": b"a", "more_body": True}
    last: Any = {"type": "http.response.body", "body": b"b"}
    await cycle_send(transport, start, first, last)
    assert len(transport.writes) == 2
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked")
    assert transport.writes[0].endswith(b"\r\n\r\n1\r\na\r\n")
    assert transport.writes[1] == b"1\r\nb\r\n0\r\n\r\n"


async def test_a_closing_answer_is_written_before_the_close() -> None:
    transport = Recorded()
    one = cycle(transport, keep_alive=False)
    await one.send(START)
    await one.send(BODY)
    assert transport.writes[0].endswith(b"\r\n\r\nok")
    assert transport.closed
