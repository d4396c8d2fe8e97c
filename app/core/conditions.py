"""Subscription conditions: CEL expressions over ``data``, ``topic`` and ``headers``.

Compiled and checked once when a subscription is saved (a syntax error, an undeclared name,
a result that is not a bool or a condition over the cost limits is the user's 422),
evaluated per message by the dispatcher. Uses the ``common-expression-language`` package
(Rust core), which has no checker and no cost limit of its own: :mod:`app.core.cel_check`
supplies both.

Cost: the package holds the GIL while it evaluates, so an expensive condition would stall
the whole process. A condition without comprehension macros costs at most linear time in
its size and the message's (both bounded) and is evaluated inline; one with macros first
has its loop steps bounded from the message (:meth:`Condition.over_budget`) and is then
evaluated in a separate process with a hard timeout (:mod:`app.dispatch.condition_pool`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cel

from app.core.cel_check import CelCheckError, Checked, check
from app.core.cel_syntax import CelSyntaxError, parse
from app.core.errors import HooklineError

MAX_SOURCE_CHARS = 4096
"""Longest condition accepted."""
MAX_COMPREHENSION_DEPTH = 3
"""Most comprehension macros (all/exists/exists_one/map/filter) nested in one another."""
COST_BUDGET = 100_000
"""Most loop steps a condition may take on one message (about 0.1 s of evaluation, idle)."""


class ConditionSyntaxError(HooklineError):
    """The condition is refused at save; the message says why (parser, checker or limit)."""

    status = 422
    code = "invalid_condition"
    kind = "cel_syntax"

    def __init__(self, message: str) -> None:
        """``message`` is the parser's, checker's or limit's own text, kept in ``details``."""
        super().__init__(
            message, details=[{"loc": ["condition"], "msg": message, "type": self.kind}]
        )

    @property
    def message(self) -> str:
        """The parser's text is only in ``details``; a checker's or limit's says it all."""
        if self.kind == "cel_syntax":
            return "condition is not valid CEL"
        return f"condition refused: {self}"


class ConditionTypeError(ConditionSyntaxError):
    """The condition parses but cannot work: undeclared name or function, non-bool result."""

    kind = "cel_type"


class ConditionLimitError(ConditionSyntaxError):
    """The condition is over a static cost limit (size, macro nesting, literal loops)."""

    kind = "cel_limit"


class ConditionEvaluationError(Exception):
    """The expression failed on one message (missing field, type mismatch, non-bool)."""


class ConditionBudgetError(ConditionEvaluationError):
    """The condition would exceed its cost budget on this message (not evaluated)."""


class Condition:
    """A compiled, checked CEL condition."""

    __slots__ = ("_checked", "_program", "source")

    def __init__(self, source: str) -> None:
        """Compile and check ``source``; raises :class:`ConditionSyntaxError` (or a subclass)."""
        self.source = source
        if len(source) > MAX_SOURCE_CHARS:
            raise ConditionLimitError(
                f"condition is {len(source)} characters long, at most {MAX_SOURCE_CHARS} allowed"
            )
        try:
            self._program = cel.compile(source)
        except ValueError as exc:
            raise ConditionSyntaxError(str(exc)) from exc
        try:
            self._checked: Checked = check(parse(source))
        except (CelSyntaxError, RecursionError) as exc:
            raise ConditionTypeError(f"condition uses syntax hookline cannot check: {exc}") from exc
        except CelCheckError as exc:
            raise ConditionTypeError(str(exc)) from exc
        if self._checked.depth > MAX_COMPREHENSION_DEPTH:
            raise ConditionLimitError(
                f"condition nests {self._checked.depth} comprehension macros "
                f"(all/exists/exists_one/map/filter), at most {MAX_COMPREHENSION_DEPTH} allowed"
            )
        static = self._checked.iterations(0)
        if static > COST_BUDGET:
            raise ConditionLimitError(
                f"condition takes at least {static} loop steps, at most {COST_BUDGET} allowed"
            )

    @property
    def guarded(self) -> bool:
        """Whether evaluation must be bounded (macros): only these leave the event loop."""
        return self._checked.has_comprehension

    def over_budget(self, data: Any, headers: Mapping[str, str]) -> str | None:
        """Why this message would make the condition too costly, or None when within budget."""
        if not self.guarded:
            return None
        steps = self._checked.iterations(max(largest_container(data), len(headers)))
        if steps > COST_BUDGET:
            return (
                f"condition exceeded its cost budget: up to {steps} loop steps on this "
                f"message, at most {COST_BUDGET} allowed"
            )
        return None

    def matches(self, data: Any, topic: str, headers: Mapping[str, str]) -> bool:
        """Evaluate here; raises :class:`ConditionEvaluationError` unless the result is a bool."""
        return evaluate(self._program, data, topic, headers)


def evaluate(program: Any, data: Any, topic: str, headers: Mapping[str, str]) -> bool:
    """Run a compiled program on one message; shared with the evaluator processes."""
    try:
        result = program.execute({"data": data, "topic": topic, "headers": dict(headers)})
    except Exception as exc:
        raise ConditionEvaluationError(f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(result, bool):
        raise ConditionEvaluationError(f"condition returned {type(result).__name__}, expected bool")
    return result


def largest_container(value: Any) -> int:
    """The length of the largest list or map inside ``value`` (0 for a scalar)."""
    largest = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            largest = max(largest, len(item))
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            largest = max(largest, len(item))
            stack.extend(item)
    return largest


def compile_condition(source: str | None) -> Condition | None:
    """Compile an optional condition; ``None`` or blank means "every message"."""
    if source is None or not source.strip():
        return None
    return Condition(source)
