"""The pyreqwest sender connects only where the guard looked: pinned clients, end to end.

The host name is resolved in Python (a scripted resolver stands in for DNS here), every
address is checked, and reqwest is handed the checked address for that name: these tests
watch real sockets on loopback addresses to see where connections actually land.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from app.dispatch.clients import PinnedClients
from app.dispatch.guard import DestinationGuard
from app.dispatch.resolver import GuardedResolver
from app.dispatch.sender import WebhookSender
from tests.receiver import Receiver
from tests.security.hostile import read_request
from tests.security.test_ssrf import ScriptedResolver

TIMEOUT_MS = 2_000


@dataclass
class Listener:
    """A loopback HTTP/1.1 server that answers 200 and remembers every request head."""

    host: str
    port: int = 0
    connections: int = 0
    heads: list[bytes] = field(default_factory=list)
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    def host_header(self, index: int) -> str:
        for line in self.heads[index].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"host":
                return value.strip().decode()
        return ""

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                self.heads.append(head)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def listening(host: str, port: int = 0) -> AsyncIterator[Listener]:
    listener = Listener(host, port)
    await listener.start()
    try:
        yield listener
    finally:
        await listener.stop()


@contextlib.asynccontextmanager
async def started(sender: WebhookSender) -> AsyncIterator[WebhookSender]:
    await sender.start()
    try:
        yield sender
    finally:
        await sender.close()


async def test_a_rebound_name_is_refused_before_any_connection() -> None:
    """``rebind.test`` answers an allowed address, then 127.0.0.1 (as a rebinding DNS
    server would, TTL 0): the first request reaches the allowed address; the second is
    refused, and nothing ever connects to 127.0.0.1.

    127.0.0.2 stands for the public address (the guard allows it by CIDR), so no packet
    leaves this machine; both listeners share the port the URL names.
    """
    async with listening("127.0.0.2") as allowed, listening("127.0.0.1", allowed.port) as loop:
        inner = ScriptedResolver({"rebind.test": [["127.0.0.2"], ["127.0.0.1"]]})
        guard = DestinationGuard(False, ["127.0.0.2/32"])
        sender = WebhookSender("test", resolver=GuardedResolver(guard, inner, ttl_s=0))
        url = f"http://rebind.test:{allowed.port}/hook"
        async with started(sender):
            first = await sender.send(url, b"{}", {}, timeout_ms=TIMEOUT_MS)
            second = await sender.send(url, b"{}", {}, timeout_ms=TIMEOUT_MS)
        assert first.status == 200, first
        assert second.reason == "blocked_destination", second
        assert "rebind.test" in (second.body_excerpt or "")
        assert inner.calls == ["rebind.test", "rebind.test"]
        assert (allowed.connections, len(allowed.heads)) == (1, 1)
        assert allowed.host_header(0) == f"rebind.test:{allowed.port}"
        assert loop.connections == 0


async def test_the_connection_goes_to_the_checked_address_with_the_name_as_host(
    receiver: Receiver,
) -> None:
    """``allow_private_networks: true``: a name resolving to 127.0.0.1 reaches the receiver
    there, and the receiver sees the name (not the address) in ``Host``.
    """
    inner = ScriptedResolver({"hooks.example.com": [["127.0.0.1"]]})
    sender = WebhookSender("test", resolver=GuardedResolver(DestinationGuard(True), inner))
    async with started(sender):
        results = [
            await sender.send(
                f"http://hooks.example.com:{receiver.port}/pinned",
                b"{}",
                {"webhook-id": "msg_1", "Content-Type": "application/json"},
                TIMEOUT_MS,
            )
            for _ in range(3)
        ]
        assert sender.clients == 1  # one pinned client, reused
    assert [r.status for r in results] == [200, 200, 200]
    assert inner.calls == ["hooks.example.com"]  # resolved once, then kept for the TTL
    got = await receiver.wait_for(3, "/pinned")
    assert {r.headers["Host"] for r in got} == {f"hooks.example.com:{receiver.port}"}
    # Names go out in lower case, as Standard Webhooks spells them (hyper would title-case).
    assert all(name == name.lower() for r in got for name in r.raw_names)
    assert "webhook-id" in got[0].raw_names


async def test_an_unreachable_address_falls_through_to_the_next_allowed_one(
    receiver: Receiver,
) -> None:
    """A name with a dead address first (127.0.0.3, nothing listening) still delivers."""
    inner = ScriptedResolver({"two.test": [["127.0.0.3", "127.0.0.1"]]})
    sender = WebhookSender("test", resolver=GuardedResolver(DestinationGuard(True), inner))
    async with started(sender):
        result = await sender.send(f"http://two.test:{receiver.port}/two", b"{}", {}, TIMEOUT_MS)
    assert result.status == 200, result
    await receiver.wait_for(1, "/two")


async def test_proxy_settings_in_the_environment_are_ignored(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy resolves names itself, past the guard: the sender never uses one."""
    async with listening("127.0.0.1") as proxy:
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        inner = ScriptedResolver({"direct.test": [["127.0.0.1"]]})
        sender = WebhookSender("test", resolver=GuardedResolver(DestinationGuard(True), inner))
        async with started(sender):
            result = await sender.send(
                f"http://direct.test:{receiver.port}/direct", b"{}", {}, TIMEOUT_MS
            )
    assert result.status == 200, result
    await receiver.wait_for(1, "/direct")
    assert proxy.connections == 0


async def test_literal_blocked_addresses_are_refused_without_connecting() -> None:
    """With the guard strict, ``127.0.0.1`` and its shorthand ``127.1`` (which reqwest's URL
    parser reads as 127.0.0.1) are refused by the sender itself, before any connection.
    """
    async with listening("127.0.0.1") as listener:
        sender = WebhookSender("test", resolver=GuardedResolver(DestinationGuard(False)))
        async with started(sender):
            results = [
                await sender.send(f"http://{host}:{listener.port}/", b"{}", {}, TIMEOUT_MS)
                for host in ("127.0.0.1", "127.1")
            ]
    assert [r.reason for r in results] == ["blocked_destination"] * 2
    assert listener.connections == 0


class FailingResolver:
    """A DNS stand-in that finds nothing."""

    async def resolve(self, host: str, port: int) -> list[str]:
        raise OSError(f"[Errno -2] Name or service not known: {host}")


async def test_unresolvable_names_and_unreadable_urls_are_connection_errors() -> None:
    guarded = GuardedResolver(DestinationGuard(True), FailingResolver())
    sender = WebhookSender("test", resolver=guarded)
    async with started(sender):
        unknown = await sender.send("http://nowhere.test/hook", b"{}", {}, TIMEOUT_MS)
        unreadable = await sender.send("http://exa mple.com/", b"{}", {}, TIMEOUT_MS)
    assert (unknown.status, unknown.reason) == (None, "connection_error")
    assert "cannot resolve nowhere.test" in (unknown.body_excerpt or "")
    assert (unreadable.status, unreadable.reason) == (None, "connection_error")
    assert "invalid URL" in (unreadable.body_excerpt or "")


async def test_idle_clients_are_closed_and_their_number_bounded() -> None:
    """Clients unused for ``idle_s`` go at the next sweep; beyond ``max_clients`` the least
    recently used idle one goes; a client in use is never closed.
    """
    clients = PinnedClients("test", max_in_flight=4, idle_s=3600, max_clients=2)
    try:
        busy = clients.acquire(("http", "a.test", 80, "127.0.0.1"))
        idle = clients.acquire(("http", "b.test", 80, "127.0.0.1"))
        idle.release()
        clients.acquire(("http", "c.test", 80, "127.0.0.1")).release()
        assert len(clients) == 2  # b went (idle, least recent); a is in use
        clients.acquire(("http", "d.test", 80, "127.0.0.1")).release()
        assert len(clients) == 2  # c went; a still in use, so it stays over the bound
        busy.release()
        assert clients.acquire(("http", "a.test", 80, "127.0.0.1")) is busy
    finally:
        await clients.close()
    assert len(clients) == 0


# -- TLS --------------------------------------------------------------------------------

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="the openssl command makes the test CA")


def make_certificates(directory: Path) -> None:
    """A CA, and a server certificate it signed for ``rebind.test``."""

    def openssl(*args: str) -> None:
        subprocess.run([str(OPENSSL), *args], cwd=directory, check=True, capture_output=True)

    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=hookline test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
    )  # fmt: skip
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=rebind.test",
    )  # fmt: skip
    (directory / "ext.cnf").write_text(
        "subjectAltName=DNS:rebind.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
    )
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf",
    )  # fmt: skip


PROBE = """
import asyncio, json, sys
from app.dispatch.guard import DestinationGuard
from app.dispatch.resolver import GuardedResolver
from app.dispatch.sender import WebhookSender
from tests.security.test_ssrf import ScriptedResolver

async def main() -> None:
    out = {}
    for url in sys.argv[1:]:
        host = url.split("//")[1].split(":")[0]
        inner = ScriptedResolver({host: [["127.0.0.1"]]})
        sender = WebhookSender("test", resolver=GuardedResolver(DestinationGuard(True), inner))
        await sender.start()
        try:
            result = await sender.send(url, b"{}", {}, timeout_ms=5000)
        finally:
            await sender.close()
        out[host] = [result.status, result.reason, result.body_excerpt]
    print(json.dumps(out))

asyncio.run(main())
"""


@needs_openssl
async def test_tls_is_verified_against_the_host_name_not_the_pinned_address(
    tmp_path: Path,
) -> None:
    """A TLS receiver on 127.0.0.1 with a certificate for ``rebind.test``, reached through
    clients pinned to 127.0.0.1: refused while its CA is unknown; with the CA trusted
    (``SSL_CERT_FILE``, as for OpenSSL), ``rebind.test`` is delivered to and ``other.test``
    (same address, a name the certificate does not hold) is refused.
    """
    import ssl

    make_certificates(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    urls = [f"https://rebind.test:{port}/hook", f"https://other.test:{port}/hook"]

    async def probe(extra_env: dict[str, str]) -> dict[str, list[object]]:
        env = {**os.environ, **extra_env}
        env.pop("SSL_CERT_DIR", None)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            PROBE,
            *urls,
            env=env,
            cwd=Path(__file__).parents[2],
            stdout=asyncio.subprocess.PIPE,
        )
        stdout, _ = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0
        answer: dict[str, list[object]] = json.loads(stdout)
        return answer

    try:
        untrusted = await probe({})
        trusted = await probe({"SSL_CERT_FILE": str(tmp_path / "ca.pem")})
    finally:
        server.close()
    for host in ("rebind.test", "other.test"):
        status, reason, excerpt = untrusted[host]
        assert (status, reason) == (None, "connection_error")
        assert "certificate" in str(excerpt)
    assert trusted["rebind.test"][:2] == [200, "delivered"]
    status, reason, excerpt = trusted["other.test"]
    assert (status, reason) == (None, "connection_error")
    assert "certificate" in str(excerpt)
