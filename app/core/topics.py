"""Topic name rules, shared by the API, the config loader and every adapter."""

from __future__ import annotations

import re

TOPIC_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,254}$"
_TOPIC_RE = re.compile(TOPIC_PATTERN)


def is_valid_topic(name: str) -> bool:
    """True for names like ``user.created`` or ``billing:invoice-paid`` (dots for hierarchies)."""
    return bool(_TOPIC_RE.fullmatch(name))
