"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

The signed content is ``{webhook-id}.{webhook-timestamp}.{body}``, HMAC-SHA256 with the
base64-decoded part of a ``whsec_`` secret, sent as ``v1,<base64>``. Receivers verify it
with any Standard Webhooks library.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
DEFAULT_ROTATION_GRACE_MS = 24 * 3600 * 1000
"""How long a rotated-out secret keeps signing by default (a day, as Svix does)."""
MAX_ROTATION_GRACE_MS = 30 * 24 * 3600 * 1000
"""The longest overlap allowed: an old secret should not live on indefinitely."""


@functools.lru_cache(maxsize=4096)
def secret_key_bytes(secret: str) -> bytes:
    """The HMAC key of a secret: base64 after ``whsec_``; other strings are used as UTF-8."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except ValueError:
            pass
    return secret.encode()


class Signer:
    """Signs deliveries with one secret: the keyed HMAC state is made once and copied for
    each delivery (a fresh ``hmac.new`` pads and hashes the key again every time).
    """

    __slots__ = ("_keyed",)

    def __init__(self, secret: str) -> None:
        """``secret``: a ``whsec_`` secret or a plain string (see :func:`secret_key_bytes`)."""
        self._keyed = hmac.new(secret_key_bytes(secret), digestmod="sha256")

    def sign(self, message_id: str, timestamp: int, body: bytes) -> str:
        """The signature of one delivery, ``v1,<base64>``."""
        mac = self._keyed.copy()
        mac.update(f"{message_id}.{timestamp}.".encode())
        mac.update(body)
        return "v1," + binascii.b2a_base64(mac.digest(), newline=False).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one delivery."""
    return Signer(secret).sign(message_id, timestamp, body)


def is_valid_secret(secret: str) -> bool:
    """Secrets must be ``whsec_`` + base64 of 24 to 64 bytes, or a plain string of 16+ chars."""
    if secret.startswith(SECRET_PREFIX):
        try:
            raw = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except ValueError:
            return False
        return 24 <= len(raw) <= 64
    return 16 <= len(secret) <= 256


def mask_secret(secret: str | None) -> str | None:
    """What listings show instead of a secret: its prefix and last four characters."""
    if not secret:
        return None
    return f"{secret[:6]}...{secret[-4:]}" if secret.startswith(SECRET_PREFIX) else "****"
