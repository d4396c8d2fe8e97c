"""What every adapter's settings share: the number types and validation of ``config:``.

Each adapter's settings are a frozen dataclass whose fields carry their pydantic
constraints; :mod:`app.config` validates them once, at the edge, as part of the
adapter union, and :func:`parse_settings` does the same for one ``config:`` block alone
(tests, benchmarks, ``from_config``). Nothing is coerced by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError

from app.core.errors import ConfigError, describe_validation

SettingsT = TypeVar("SettingsT")

FORBID_UNKNOWN_KEYS = ConfigDict(extra="forbid")
"""The ``__pydantic_config__`` of every settings dataclass: a typo is an error."""


def _not_a_bool(value: object) -> object:
    """``true`` is not a number of milliseconds, though pydantic would read it as 1."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")  # noqa: TRY004 - a ValueError for pydantic
    return value


PositiveInt = Annotated[int, BeforeValidator(_not_a_bool), Field(gt=0)]
NonNegativeInt = Annotated[int, BeforeValidator(_not_a_bool), Field(ge=0)]
Prefix = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]
"""A namespace for every key, queue or exchange: 1-64 letters, digits, ``._:-``."""


def parse_settings(kind: type[SettingsT], config: Mapping[str, Any]) -> SettingsT:
    """Validate one adapter's ``config:`` block into its settings dataclass.

    Raises :class:`ConfigError` with one line naming the key (``adapter.config.<key>: ...``).
    """
    try:
        return TypeAdapter(kind).validate_python(dict(config))
    except ValidationError as exc:
        raise ConfigError("adapter.config." + describe_validation(exc)) from exc
