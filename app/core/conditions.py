"""Subscription conditions: CEL expressions over ``data``, ``topic`` and ``headers``.

Compiled once when a subscription is saved (a syntax error is the user's 422), evaluated
per message by the dispatcher. Uses the ``common-expression-language`` package (Rust core).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cel


class ConditionSyntaxError(ValueError):
    """The expression does not parse; the message is the parser's own."""


class ConditionEvaluationError(Exception):
    """The expression failed on one message (missing field, type mismatch, non-bool)."""


class Condition:
    """A compiled CEL condition."""

    __slots__ = ("_program", "source")

    def __init__(self, source: str) -> None:
        """Compile ``source``; raises :class:`ConditionSyntaxError` when it is not valid CEL."""
        self.source = source
        try:
            self._program = cel.compile(source)
        except ValueError as exc:
            raise ConditionSyntaxError(str(exc)) from exc

    def matches(self, data: Any, topic: str, headers: Mapping[str, str]) -> bool:
        """Evaluate; raises :class:`ConditionEvaluationError` unless the result is a bool."""
        try:
            result = self._program.execute({"data": data, "topic": topic, "headers": dict(headers)})
        except Exception as exc:
            raise ConditionEvaluationError(f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(result, bool):
            raise ConditionEvaluationError(
                f"condition returned {type(result).__name__}, expected bool"
            )
        return result


def compile_condition(source: str | None) -> Condition | None:
    """Compile an optional condition; ``None`` or blank means "every message"."""
    if source is None or not source.strip():
        return None
    return Condition(source)
