"""The SSRF guard with ``delivery.allow_private_networks: false``.

Only loopback traffic is allowed on this machine, so non-loopback literals are checked at
save time only (nothing is ever published to them), and every delivery-time test aims at
a real receiver on 127.0.0.1, reached by a name (``localhost``, or a name a scripted
resolver answers with 127.0.0.1).
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from app.core.models import RetryPolicy, Subscription
from app.dispatch.guard import BlockedDestinationError, DestinationGuard, literal_address
from app.dispatch.resolver import GuardedResolver
from app.dispatch.sender import WebhookSender
from tests.backends import unique
from tests.harness import Hookline, eventually, running_hookline
from tests.receiver import Receiver

GUARDED = {"allow_private_networks": False}

BLOCKED_HOSTS = [
    "127.0.0.1",
    "127.1",
    "2130706433",
    "0x7f.0.0.1",
    "0.0.0.0",
    "10.0.0.1",
    "10.255.1.2",
    "172.16.0.1",
    "192.168.1.1",
    "100.64.0.1",
    "169.254.169.254",
    "169.254.1.1",
    "224.0.0.1",
    "[::1]",
    "[::]",
    "[fd00:ec2::254]",
    "[fc00::1]",
    "[fe80::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:169.254.169.254]",
]


async def refused(hookline: Hookline, url: str) -> dict[str, Any]:
    response = await hookline.client.post(
        "/v1/subscriptions", json={"topic": "t", "url": url, "paused": True}
    )
    assert response.status_code == 422, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


@pytest.mark.parametrize("host", BLOCKED_HOSTS)
async def test_literal_blocked_addresses_are_refused_at_save_time(host: str) -> None:
    async with running_hookline("builtin", delivery=GUARDED) as hookline:
        error = await refused(hookline, f"http://{host}:8080/hook")
        assert error["code"] == "blocked_destination"
        assert "loopback, private or metadata" in error["message"]
        created = await hookline.client.post(
            "/v1/subscriptions",
            json={"id": "s", "topic": "t", "url": "https://hooks.example.com/x", "paused": True},
        )
        assert created.status_code == 201
        moved = await hookline.client.patch("/v1/subscriptions/s", json={"url": f"http://{host}/"})
        assert moved.status_code == 422
        assert moved.json()["error"]["code"] == "blocked_destination"
        [kept] = await hookline.runtime.adapter.list_subscriptions()
        assert kept.url == "https://hooks.example.com/x"


async def test_names_and_public_literals_pass_the_save_time_check() -> None:
    """A name cannot be judged before it is resolved; that happens at delivery."""
    async with running_hookline("builtin", delivery=GUARDED) as hookline:
        for url in ("https://hooks.example.com/x", "http://8.8.8.8/x", "http://[2001:db8::1]/"):
            response = await hookline.client.post(
                "/v1/subscriptions", json={"topic": "t", "url": url, "paused": True}
            )
            expected = 422 if "2001:db8" in url else 201  # documentation range: not global
            assert response.status_code == expected, (url, response.text)


async def test_allowlist_by_host_and_by_cidr_opens_the_guard() -> None:
    delivery = {**GUARDED, "allowed_hosts": ["metadata.internal", "10.0.0.0/8", "127.0.0.1"]}
    async with running_hookline("builtin", delivery=delivery) as hookline:
        for url in ("http://10.1.2.3/hook", "http://127.0.0.1:9/hook", "http://metadata.internal/"):
            response = await hookline.client.post(
                "/v1/subscriptions", json={"topic": "t", "url": url, "paused": True}
            )
            assert response.status_code == 201, (url, response.text)
        for host in ("169.254.169.254", "192.168.1.1", "127.0.0.2", "[::1]"):
            assert (await refused(hookline, f"http://{host}/"))["code"] == "blocked_destination"


async def test_guard_off_by_default_allows_loopback() -> None:
    async with running_hookline("builtin") as hookline:
        response = await hookline.client.post(
            "/v1/subscriptions", json={"topic": "t", "url": "http://127.0.0.1:9/", "paused": True}
        )
        assert response.status_code == 201


async def dlq_entries(hookline: Hookline, topic: str) -> list[dict[str, Any]]:
    response = await hookline.client.get(f"/v1/topics/{topic}/dlq")
    assert response.status_code == 200
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


async def test_a_name_resolving_to_loopback_is_dead_lettered(receiver: Receiver) -> None:
    """``localhost`` passes the save-time check (a name) and is refused on resolution."""
    async with running_hookline("builtin", delivery=GUARDED) as hookline:
        topic = unique("ssrf")
        sub = await hookline.subscribe(topic=topic, url=f"http://localhost:{receiver.port}/hook")
        await hookline.publish(topic, {"steal": "credentials"})
        await eventually(lambda: hookline.dlq_count(topic))
        [entry] = await dlq_entries(hookline, topic)
        assert entry["subscription_id"] == sub["id"]
        assert entry["attempts"] == 1  # dead at once: retrying cannot help
        assert entry["last_error"]["reason"] == "blocked_destination"
        assert "localhost" in entry["last_error"]["body_excerpt"]
        assert receiver.requests() == []


async def test_a_stored_literal_loopback_url_is_refused_at_delivery(receiver: Receiver) -> None:
    """A subscription stored before the guard was turned on (or by an instance without
    it) is checked again on every attempt: a literal address is never resolved.
    """
    async with running_hookline("builtin", delivery=GUARDED) as hookline:
        topic = unique("ssrf")
        for sub_id, host in (("plain", "127.0.0.1"), ("short", "127.1")):
            await hookline.runtime.adapter.create_subscription(
                Subscription(
                    id=sub_id,
                    topic=topic,
                    url=f"http://{host}:{receiver.port}/hook",
                    retry=RetryPolicy(max_retries=3, retry_delay_ms=10),
                )
            )
        hookline.runtime.dispatcher.poke()
        await hookline.publish(topic, 1)
        await eventually(lambda: _count_is(hookline, topic, 2))
        reasons = {
            e["subscription_id"]: e["last_error"]["reason"]
            for e in await dlq_entries(hookline, topic)
        }
        assert reasons == {"plain": "blocked_destination", "short": "blocked_destination"}
        assert receiver.requests() == []


async def _count_is(hookline: Hookline, topic: str, count: int) -> bool:
    return await hookline.dlq_count(topic) == count


@pytest.mark.parametrize(
    "allowed", [["localhost"], ["127.0.0.0/8", "::1/128"]], ids=["host", "cidr"]
)
async def test_allowlist_also_opens_delivery(receiver: Receiver, allowed: list[str]) -> None:
    async with running_hookline(
        "builtin", delivery={**GUARDED, "allowed_hosts": allowed}
    ) as hookline:
        topic = unique("allowed")
        await hookline.subscribe(topic=topic, url=f"http://localhost:{receiver.port}/hook")
        await hookline.publish(topic, {"ok": True})
        [got] = await receiver.wait_for(1)
        assert got.json()["data"] == {"ok": True}
        assert await hookline.dlq_count(topic) == 0


class ScriptedResolver:
    """A DNS stand-in: each name answers the next list of addresses in its script."""

    def __init__(self, script: dict[str, list[list[str]]]) -> None:
        self._script = script
        self.calls: list[str] = []

    async def resolve(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        answers = self._script[host]
        return list(answers.pop(0) if len(answers) > 1 else answers[0])


async def test_rebinding_is_judged_on_every_resolution() -> None:
    """Public at the first lookup, loopback at the next: the second connection is refused.

    Nothing connects here; this is the resolver the connector would use.
    """
    inner = ScriptedResolver({"rebind.test": [["93.184.216.34"], ["127.0.0.1"]]})
    resolver = GuardedResolver(DestinationGuard(False), inner, ttl_s=0)
    assert await resolver.resolve("rebind.test", 80) == ["93.184.216.34"]
    with pytest.raises(BlockedDestinationError, match=r"rebind\.test"):
        await resolver.resolve("rebind.test", 80)
    mixed = ScriptedResolver({"mixed.test": [["127.0.0.1", "93.184.216.34", "10.0.0.7"]]})
    kept = await GuardedResolver(DestinationGuard(False), mixed).resolve("mixed.test", 80)
    assert kept == ["93.184.216.34"]


async def test_the_address_connected_to_is_the_one_checked(receiver: Receiver) -> None:
    """A real sender and a real receiver on 127.0.0.1, reached as ``rebind.test``.

    Refused while the guard is strict; with 127.0.0.0/8 allowed the very same answer is
    connected to and the receiver gets the request, so the checked address and the
    connected address are one and the same.
    """
    for allowed, expect_delivery in (([], False), (["127.0.0.0/8"], True)):
        inner = ScriptedResolver({"rebind.test": [["127.0.0.1"]]})
        guard = DestinationGuard(False, allowed)
        sender = WebhookSender("test", resolver=GuardedResolver(guard, inner))
        await sender.start()
        try:
            result = await sender.send(
                f"http://rebind.test:{receiver.port}/hook", b"{}", {}, timeout_ms=5000
            )
        finally:
            await sender.close()
        assert inner.calls == ["rebind.test"]
        if expect_delivery:
            assert result.status == 200
        else:
            assert result.reason == "blocked_destination"
            assert "rebind.test" in (result.body_excerpt or "")
    assert len(receiver.requests()) == 1


def test_literal_address_reads_resolver_shorthands() -> None:
    assert literal_address("127.1") == ipaddress.ip_address("127.0.0.1")
    assert literal_address("0x7f.0.0.1") == ipaddress.ip_address("127.0.0.1")
    assert literal_address("2130706433") == ipaddress.ip_address("127.0.0.1")
    assert literal_address("[::1]") == ipaddress.ip_address("::1")
    for name in ("example.com", "deadbeef", "cafe.be", "localhost", ""):
        assert literal_address(name) is None
