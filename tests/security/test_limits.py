"""Request limits as a client meets them on a real ``hookline serve``: 431, 413, 405, 422.

uvicorn's httptools parser has no header limit of its own (it happily buffers a 20 MB
header), so hookline bounds the head in the protocol and checks count and size in a
middleware. These tests speak raw HTTP over loopback sockets to see exactly what comes back.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.process import ServeProcess, write_config

HEAD_LIMIT_MESSAGE = "request line and headers are larger than"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    tmp = tmp_path_factory.mktemp("limits")
    config = write_config(
        tmp / "config.yaml",
        "modules::queue::BuiltinQueueAdapter",
        {},
        limits={"max_body_bytes": 4096, "max_headers": 50, "max_header_bytes": 8192},
    )
    process = ServeProcess(config, tmp / "serve.log")
    try:
        process.wait_ready()
        yield process
    finally:
        process.close()


def raw_exchange(
    port: int, head: bytes, chunk: int = 64 * 1024
) -> tuple[int, dict[str, str], bytes]:
    """Send ``head`` as a plain client would (stopping when the server hangs up), then read
    the one response.

    A blocking socket, because asyncio's stream reader raises a reset before handing out
    the answer that arrived just ahead of it.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sent = 0
        try:
            while sent < len(head):
                sent += sock.send(head[sent : sent + chunk])
        except ConnectionError:
            pass  # the server refused and closed; its answer is already here
        data = b""
        try:
            while b"\r\n\r\n" not in data or len(data) < _expected_length(data):
                more = sock.recv(65536)
                if not more:
                    break
                data += more
        except ConnectionError:
            pass
    head_part, _, body = data.partition(b"\r\n\r\n")
    lines = head_part.decode().split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def _expected_length(data: bytes) -> int:
    head, _, _ = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(head) + 4 + int(line.split(b":")[1])
    return len(data) + 1


def request_head(*headers: bytes) -> bytes:
    return b"GET /healthz HTTP/1.1\r\nHost: hookline\r\n" + b"".join(headers) + b"\r\n"


async def test_ordinary_requests_pass(server: ServeProcess) -> None:
    status, _, body = await asyncio.to_thread(
        raw_exchange, server.port, request_head(*(b"X-Ok-%d: v\r\n" % i for i in range(40)))
    )
    assert (status, json.loads(body)) == (200, {"status": "ok"})


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ([b"X-H%d: v\r\n" % i for i in range(60)], "at most 50 headers"),
        ([b"X-H%d: v\r\n" % i for i in range(10_000)], None),
        ([b"X-Big: " + b"a" * 10_000 + b"\r\n"], "larger than 8192 bytes"),
        ([b"X-Big: " + b"a" * 1_000_000 + b"\r\n"], HEAD_LIMIT_MESSAGE),
    ],
    ids=["60-headers", "10000-headers", "10kb-header", "1mb-header"],
)
async def test_too_many_or_too_large_headers_are_431(
    server: ServeProcess, headers: list[bytes], message: str | None
) -> None:
    status, response_headers, body = await asyncio.to_thread(
        raw_exchange, server.port, request_head(*headers)
    )
    assert status == 431
    assert response_headers["content-type"] == "application/json"
    assert response_headers["connection"] == "close"
    error = json.loads(body)["error"]
    assert error["code"] == "headers_too_large"
    if message is not None:
        assert message in error["message"]


async def test_an_endless_header_is_cut_off_early(server: ServeProcess) -> None:
    """A 20 MB header: the server answers 431 and hangs up long before it has all of it."""

    def endless() -> tuple[int, bytes]:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: hookline\r\nX-Endless: ")
            sent = 0
            chunk = b"a" * 65536
            try:
                while sent < 20_000_000:
                    sock.sendall(chunk)
                    sent += len(chunk)
            except ConnectionError:
                pass
            answer = b""
            try:
                while more := sock.recv(4096):
                    answer += more
            except ConnectionError:
                pass
            return sent, answer

    sent, answer = await asyncio.to_thread(endless)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"headers_too_large" in answer
    assert sent < 20_000_000


async def test_clients_see_json_errors_for_bodies_methods_and_bad_bytes(
    server: ServeProcess,
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        too_big = await client.post("/v1/topics/t/messages", json={"data": "x" * 5000})
        assert too_big.status_code == 413
        assert too_big.json()["error"]["code"] == "payload_too_large"

        not_allowed = await client.request("OPTIONS", "/v1/subscriptions")
        assert not_allowed.status_code == 405
        assert not_allowed.headers["allow"] == "GET, POST"
        assert not_allowed.json()["error"]["code"] == "method_not_allowed"

        garbage = await client.post(
            "/v1/topics/t/messages",
            content=b"\xff\xfe\x00garbage",
            headers={"Content-Type": "application/json"},
        )
        assert garbage.status_code == 422
        assert garbage.json()["error"]["code"] == "validation_error"

        boolean = await client.post("/v1/topics/t/messages", json={"data": 1, "delay_ms": False})
        assert boolean.status_code == 422
        whole = await client.post("/v1/topics/t/messages", json={"data": 1, "delay_ms": 5.0})
        assert whole.status_code == 202


async def test_the_server_survives_all_of_it(server: ServeProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        assert (await client.get("/healthz")).status_code == 200
    assert "Traceback" not in server.log()
