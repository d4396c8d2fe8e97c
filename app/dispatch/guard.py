"""SSRF guard: webhooks must not reach loopback, private or cloud-metadata addresses.

Checked twice: when a subscription is saved (a literal blocked address is a 422) and on
the address actually connected to (:class:`app.dispatch.resolver.GuardedResolver` answers
the sender, which connects only to what it answered), so a DNS name that re-points to
127.0.0.1 after the save (DNS rebinding) is still refused.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)


class BlockedDestinationError(OSError):
    """Every address of a destination is refused by the guard."""


def literal_address(host: str) -> IPAddress | None:
    """The address ``host`` spells, or None when it is a name that needs resolving.

    Besides the usual forms this reads the shorthands the C resolver accepts without any
    DNS lookup (``127.1``, ``0x7f.0.0.1``, ``2130706433``), so they are refused at save
    time like ``127.0.0.1`` instead of slipping through as "names".
    """
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if not host or not all(c in "0123456789abcdefABCDEFxX." for c in host):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def is_blocked_address(address: IPAddress) -> bool:
    """Anything but a globally routable unicast address: loopback, private, link-local,
    cloud metadata, shared (CGNAT), multicast, unspecified, reserved, documentation...
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    site_local = isinstance(address, ipaddress.IPv6Address) and address.is_site_local
    return (
        address in METADATA_ADDRESSES
        or not address.is_global
        or address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_unspecified
        or address.is_reserved
        or site_local
    )


class DestinationGuard:
    """Decides whether a host or address may receive webhooks."""

    def __init__(self, allow_private_networks: bool, allowed_hosts: Iterable[str] = ()) -> None:
        """``allowed_hosts`` holds host names and CIDRs that are always allowed."""
        self.allow_private_networks = allow_private_networks
        self._hosts: set[str] = set()
        self._networks: list[Network] = []
        self._verdicts: dict[str, str | None] = {}
        for item in allowed_hosts:
            try:
                self._networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                self._hosts.add(item.lower().rstrip("."))

    def allows_address(self, address: IPAddress, host: str | None = None) -> bool:
        """True when connecting to ``address`` (reached through ``host``) is allowed."""
        if self.allow_private_networks:
            return True
        if host is not None and host.lower().rstrip(".") in self._hosts:
            return True
        if any(address in network for network in self._networks):
            return True
        return not is_blocked_address(address)

    def check_url(self, url: str) -> str | None:
        """Why ``url`` is refused when its host is a literal blocked address, else None."""
        host = urlsplit(url).hostname or ""
        address = literal_address(host)
        if address is None or self.allows_address(address, host):
            return None
        return f"destination {host} is a loopback, private or metadata address"

    async def check(self, url: str) -> str | None:
        """Delivery-time check for literal addresses (names are checked by the resolver).

        Runs once per attempt, so the answer is remembered per URL (the rules never change
        while the process runs).
        """
        if self.allow_private_networks:
            return None
        try:
            return self._verdicts[url]
        except KeyError:
            if len(self._verdicts) > 10_000:
                self._verdicts.clear()
            verdict = self._verdicts[url] = self.check_url(url)
            return verdict
