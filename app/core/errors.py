"""One error model: every error hookline raises on purpose is a :class:`HooklineError`.

Each carries the HTTP status and the stable, machine-readable code the API answers it
with, so one handler (:func:`app.api.errors.install_error_handlers`) turns any of them
into ``{"error": {"code", "message", "details"?}}``, and the CLI prints a
:class:`ConfigError` as one line. Domain rules raise their own subclass (in the module of
the rule); only the HTTP layer raises :class:`app.api.errors.ApiError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from pydantic import ValidationError

RETRY_SOON = {"Retry-After": "1"}
"""The header of a 503 that is worth retrying at once (the backend or its capacity)."""


class HooklineError(Exception):
    """Base of hookline's errors: ``status`` and ``code`` say how the API answers it.

    ``str(error)`` is the raw text (what logs show); :attr:`message` is what the API
    answers, which a subclass may phrase for people.
    """

    status: int = 500
    code: str = "internal_error"
    default_headers: ClassVar[dict[str, str] | None] = None

    def __init__(
        self, message: str = "", *, details: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        """``details`` go into the answer's ``details``; ``headers`` onto the response."""
        super().__init__(message)
        self.details = details
        default = self.default_headers
        self.headers = headers if headers is not None else dict(default) if default else None

    @property
    def message(self) -> str:
        """The text of the answer's ``message``."""
        return str(self)


class ConfigError(HooklineError):
    """The configuration is invalid; the message is one line that names the key."""

    code = "config_error"


class AdapterError(HooklineError):
    """Base class for errors an adapter raises on purpose."""

    status = 503
    code = "unavailable"


class BackendUnavailableError(AdapterError):
    """The backend cannot be reached right now; the API answers 503 and nothing is accepted."""

    code = "backend_unavailable"
    default_headers = RETRY_SOON

    @property
    def message(self) -> str:
        """Says it is the storage backend, so a client knows a retry will do."""
        return f"storage backend unavailable: {self}"


class CapacityExceededError(AdapterError):
    """The adapter is full (the builtin adapter's bound); the API answers 503."""

    code = "capacity_exceeded"
    default_headers = RETRY_SOON


class SubscriptionExistsError(AdapterError):
    """A subscription with this id already exists (raised with the id); the API answers 409."""

    status = 409
    code = "conflict"

    @property
    def message(self) -> str:
        """Names the taken id."""
        return f"subscription {self} already exists"


UNKNOWN_KEY_TYPES = frozenset({"extra_forbidden", "unexpected_keyword_argument"})
"""How pydantic reports a key nobody reads (on a model, on a dataclass)."""


def describe_validation(
    error: ValidationError, source: str | None = None, loc: Sequence[object] | None = None
) -> str:
    """The first problem of a pydantic error as one line naming the key.

    ``source`` (a file) starts the line; ``loc`` replaces pydantic's path to the key; more
    problems are counted, not listed.
    """
    first = error.errors()[0]
    where = ".".join(str(part) for part in (first["loc"] if loc is None else loc)) or "(root)"
    what = "unknown key" if first["type"] in UNKNOWN_KEY_TYPES else first["msg"]
    more = len(error.errors()) - 1
    line = f"{where}: {what}" + (f" (and {more} more)" if more else "")
    return f"{source}: {line}" if source else line
