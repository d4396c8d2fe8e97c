"""Keeping secrets out of logs, DLQ excerpts and listings.

Subscription URLs may carry credentials (``https://user:pass@host/``), receivers' error
texts echo URLs back, and signing secrets and API keys must never reach a log line. One
function, :func:`redact`, is applied to every log record and every error excerpt hookline
keeps, so a new log call cannot leak by forgetting to mask.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@'\"<>]*:)[^\s@/'\"<>]*@")
_WEBHOOK_SECRET = re.compile(r"\bwhsec_[A-Za-z0-9+/=_-]+")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+")


def mask_url_credentials(url: str) -> str:
    """Hide a password embedded in a URL (``https://user:***@host/``)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return redact(url)
    if password is None:
        return url
    netloc = f"{parts.username}:{MASK}@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc))


def redact(text: str) -> str:
    """``text`` with URL passwords, ``whsec_`` secrets and bearer tokens masked."""
    if "://" in text:
        text = _URL_PASSWORD.sub(rf"\g<head>{MASK}@", text)
    if "whsec_" in text:
        text = _WEBHOOK_SECRET.sub(f"whsec_{MASK}", text)
    if "earer" in text:
        text = _BEARER.sub(rf"\1 {MASK}", text)
    return text
