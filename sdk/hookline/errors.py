"""Errors as exceptions: every failure hookline answers carries its JSON error code.

hookline answers every error as ``{"error": {"code", "message", "details"?}}``; the SDK
raises it as :class:`HooklineError` (or the subclass for its status) so callers can catch
by kind (``except NotFound``) or branch on the stable ``code`` (``"dead_letter_cycle"``).
"""

from __future__ import annotations

from typing import Any


class HooklineError(Exception):
    """An error hookline answered (or could not answer: see :class:`HooklineConnectionError`).

    ``status`` is the HTTP status (``None`` when no answer came), ``code`` hookline's
    machine-readable code, ``message`` its human sentence, ``details`` anything more it said
    (for a 422, the list of bad fields).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "error",
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}

    def __str__(self) -> str:
        where = f"{self.status} " if self.status is not None else ""
        return f"{where}{self.code}: {self.message}"


class Unauthorized(HooklineError):  # noqa: N818 - named for the HTTP status
    """401: no API key, or one hookline does not know (``HOOKLINE_API_KEY``)."""


class Forbidden(HooklineError):  # noqa: N818 - named for the HTTP status
    """403: the API key lacks the scope this call needs (publish, subscriptions, dlq, admin)."""


class NotFound(HooklineError):  # noqa: N818 - named for the HTTP status
    """404: no such subscription, message or function."""


class Unsupported(NotFound):
    """404 for a whole route: this hookline server predates the feature (upgrade it)."""


class Conflict(HooklineError):  # noqa: N818 - named for the HTTP status
    """409: a taken subscription id, a topic change, a dead-letter cycle."""


class ValidationFailed(HooklineError):  # noqa: N818 - named for the HTTP status
    """422: the request was refused as invalid; ``details`` names the bad fields."""


class Unavailable(HooklineError):  # noqa: N818 - named for the HTTP status
    """503: the backend is unavailable or full; raised once the client's retries ran out."""


class HooklineConnectionError(HooklineError):
    """No answer at all (refused, reset, timed out), after the client's retries."""


_BY_STATUS: dict[int, type[HooklineError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: ValidationFailed,
    503: Unavailable,
}


def error_for(status: int, body: Any, headers: dict[str, str] | None = None) -> HooklineError:
    """The exception for an error answer; a body not in hookline's shape is kept as text."""
    code, message, details = "error", f"HTTP {status}", None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code", code))
        message = str(error.get("message", message))
        details = error.get("details")
    elif isinstance(body, str) and body:
        message = body[:500]
    return _BY_STATUS.get(status, HooklineError)(
        message, status=status, code=code, details=details, headers=headers
    )
