"""Conditions: checked at save against the declared variables, bounded in cost when run."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import cel
import pytest

from app.core.conditions import (
    COST_BUDGET,
    MAX_SOURCE_CHARS,
    Condition,
    ConditionBudgetError,
    ConditionEvaluationError,
    ConditionLimitError,
    ConditionSyntaxError,
    ConditionTypeError,
    largest_container,
)
from app.core.models import Subscription
from app.dispatch.condition_pool import ConditionPool
from tests.backends import unique
from tests.harness import eventually, running_hookline
from tests.receiver import Receiver

MESSAGE: dict[str, Any] = {
    "data": {
        "priority": "high",
        "n": 4,
        "amount": 150,
        "flag": True,
        "a": 1,
        "s": "abc",
        "t": "2024-01-01T00:00:00Z",
        "l": [1, 2],
        "m": {"k": 1},
        "x": 1,
    },
    "topic": "orders",
    "headers": {"region": "eu", "x": "y"},
}

# Conditions that work: each must pass the checker AND evaluate to a bool on MESSAGE.
ACCEPTED = [
    "data.priority == 'high'",
    "headers['region'] == 'eu'",
    "data.n % 2 == 0",
    "data.x == 1",
    "data.amount > 100",
    "data.flag",
    "has(data.a) && data.a == 1",
    "has(headers.region)",
    "data.l.all(x, x > 0)",
    "data.l.exists(x, x == 1) && data.l.all(y, y > 0)",
    "data.m.all(k, k.size() > 0)",
    "topic.startsWith('ord')",
    "'x' in headers",
    "size(data.l) > 1",
    "data.l.map(x, x * 2).exists(y, y > 3)",
    "data.l.filter(x, x > 1).size() == 1",
    "data.l.map(x, x > 1, x * 2) == [4]",
    "data.l.exists_one(x, x == 1)",
    "type(data.a) == int",
    "data.a in [1, 2]",
    "data.s.matches('^a') || data.s.contains('z')",
    "data.s.endsWith('c')",
    "timestamp(data.t) > timestamp('2020-01-01T00:00:00Z')",
    "timestamp(data.t).getFullYear() == 2024",
    "data.l.all(a, data.l.all(b, a + b >= 0))",
    "data.l.all(x, data.l.all(x, x > 0))",
    "[data.l, data.l].all(l, l.all(x, x > 0))",
    "!data.flag || data.n > 1",
    "data.flag ? data.n > 1 : false",
    "data.l.size() > 0 ? data.l[0] > 0 : false",
    "optional.of(1).hasValue()",
    "data.l[0] == 1",
    "data['a'] == 1",
    "headers.x == 'y'",
    "dyn(data.a) == 1",
    "topic == 'orders' // a comment",
    "r'\\d' != data.s",
    "'''ab'c''' != data.s",
    "b'x' != bytes(data.s)",
    "1u == uint(data.a)",
    "0x1 == data.a",
    "1e3 > double(data.a)",
    "data.a != null",
    "{'a': 1}.a == data.a",
    "-data.a < 0",
    "data.a + 1 == 2",
    "string(data.n) + 'x' == '4x'",
]

REFUSED = [
    ("1 + 2", "returns int"),
    ("'text'", "returns string"),
    ("foo.bar == 1", "undeclared reference to 'foo'"),
    ("x", "undeclared reference to 'x'"),
    ("data.l.all(x, x > 0) && x > 0", "undeclared reference to 'x'"),
    ("data.l.map(x, x)", "returns list"),
    ("data.l.size()", "returns int"),
    ("data.a + 1", "returns int"),
    ("topic", "returns string"),
    ("headers", "returns map"),
    ("headers['x']", "returns string"),
    ("null", "returns null"),
    ("true ? 1 : 2", "returns int"),
    ("max(1, 2) == 2", "function 'max'"),
    ("data.s.lowerAscii() == 'a'", "function 'lowerAscii'"),
    ("!'a'", "needs a bool"),
    ("1 && true", "needs bools"),
    ("[1].all(x, 1)", "bool predicate"),
    ("topic.x == 1", "cannot select field 'x' of a string"),
    ("now > 1", "undeclared reference to 'now'"),
]


@pytest.mark.parametrize("source", ACCEPTED)
def test_accepted_conditions_check_and_evaluate_to_a_bool(source: str) -> None:
    condition = Condition(source)
    result = cel.compile(source).execute(MESSAGE)
    assert isinstance(result, bool)
    assert condition.matches(MESSAGE["data"], MESSAGE["topic"], MESSAGE["headers"]) is result


@pytest.mark.parametrize(("source", "reason"), REFUSED)
def test_refused_conditions_name_the_problem(source: str, reason: str) -> None:
    cel.compile(source)  # valid syntax: only the checker can refuse these
    with pytest.raises(ConditionTypeError, match=reason.replace("(", r"\(")):
        Condition(source)


def test_syntax_errors_keep_the_parser_message() -> None:
    with pytest.raises(ConditionSyntaxError, match="Syntax error") as caught:
        Condition("data.x ==")
    assert caught.value.kind == "cel_syntax"


def test_size_and_nesting_limits() -> None:
    with pytest.raises(ConditionLimitError, match="characters long"):
        Condition("data.a == 1 && " * (MAX_SOURCE_CHARS // 10) + "true")
    nested = "data.l.all(a, data.l.all(b, data.l.all(c, data.l.all(d, a + b + c + d > 0))))"
    with pytest.raises(ConditionLimitError, match="nests 4 comprehension macros"):
        Condition(nested)
    Condition("data.l.all(a, data.l.all(b, data.l.all(c, a + b + c > 0)))")


def test_the_issue_condition_is_refused_at_save() -> None:
    fifty = "[" + ", ".join(str(i) for i in range(50)) + "]"
    costly = (
        f"{fifty}.all(a, {fifty}.all(b, {fifty}.all(c, {fifty}.all(d, "
        f"{fifty}.all(e, a + b + c + d + e >= 0)))))"
    )
    with pytest.raises(ConditionLimitError):
        Condition(costly)
    # Within the nesting limit, literal lists alone can still be too costly.
    hundred = "[" + ", ".join(str(i) for i in range(100)) + "]"
    with pytest.raises(ConditionLimitError, match="loop steps"):
        Condition(f"{hundred}.all(a, {hundred}.all(b, {hundred}.all(c, a + b + c >= 0)))")


def test_cost_bound_grows_with_the_lists_of_the_message() -> None:
    quadratic = Condition("data.l.all(a, data.l.all(b, a + b >= 0))")
    assert quadratic.guarded
    assert quadratic.over_budget({"l": list(range(100))}, {}) is None
    reason = quadratic.over_budget({"l": list(range(5000))}, {})
    assert reason is not None
    assert "exceeded its cost budget" in reason
    assert str(COST_BUDGET) in reason
    # Sequential macros add, nested ones multiply.
    sequential = Condition("data.l.all(a, a >= 0) && data.l.exists(b, b == 1)")
    assert sequential.over_budget({"l": list(range(5000))}, {}) is None
    # The list a macro walks may sit anywhere in the message, even in headers' size.
    assert quadratic.over_budget({"deep": [{"x": list(range(5000))}]}, {}) is not None
    cheap = Condition("data.amount > 100")
    assert not cheap.guarded
    assert cheap.over_budget({"l": list(range(100_000))}, {}) is None


def test_largest_container() -> None:
    assert largest_container(5) == 0
    assert largest_container({"a": [1, 2, 3], "b": {"c": [[1] * 7]}}) == 7


async def test_pool_evaluates_off_the_event_loop_and_kills_a_runaway() -> None:
    pool = ConditionPool(size=1, timeout_s=0.3)
    source = "data.l.all(a, data.l.all(b, a + b >= 0))"
    try:
        assert await pool.matches(source, {"l": [1, 2]}, "t", {}) is True
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        started = time.monotonic()
        # 25 million steps (seconds of work): the evaluator is killed at its time limit.
        with pytest.raises(ConditionBudgetError, match=r"no result within 0\.3 s"):
            await pool.matches(source, {"l": list(range(5000))}, "t", {})
        took = time.monotonic() - started
        ticker.cancel()
        assert took < 2.0
        assert ticks >= 5  # the loop kept running meanwhile
        # A fresh evaluator takes over; errors come back as the message's error.
        assert await pool.matches(source, {"l": [-5, 1]}, "t", {}) is False
        with pytest.raises(ConditionEvaluationError, match="No such overload"):
            await pool.matches("data.l.all(x, x + 'a' == 1)", {"l": [1]}, "t", {})
    finally:
        await pool.close()


async def test_a_stored_condition_refused_today_fails_messages_not_the_dispatcher(
    receiver: Receiver,
) -> None:
    async with running_hookline("builtin") as hookline:
        topic = unique("legacy")
        # Saved by an older version that only checked syntax: `1 + 2` is no bool.
        legacy = Subscription(id=unique("sub"), topic=topic, url=receiver.url("/legacy"))
        await hookline.runtime.adapter.create_subscription(legacy.with_changes(condition="1 + 2"))
        healthy = await hookline.subscribe(topic=topic, url=receiver.url("/ok"))
        await hookline.wait_until_consuming(legacy.id)
        await hookline.publish(topic, {"n": 1})
        await receiver.wait_for(1, "/ok")
        await eventually(lambda: hookline.dlq_count(topic))
        [entry] = (await hookline.client.get(f"/v1/topics/{topic}/dlq")).json()["entries"]
        assert entry["subscription_id"] == legacy.id
        assert entry["last_error"]["reason"] == "condition_error"
        assert "must return a bool" in entry["last_error"]["body_excerpt"]
        assert healthy["id"] in hookline.runtime.dispatcher._workers
