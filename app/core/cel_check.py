"""Static checks of a condition: declared names, a boolean result, and a bound on its cost.

The ``cel`` package has no type checker and no cost estimate, so a condition such as
``1 + 2`` or ``foo.bar == 1`` would compile and then fail on every message. This module
walks the tree from :mod:`app.core.cel_syntax` with the declared variables (``data``: a
map of anything, ``topic``: a string, ``headers``: a map of strings) and the functions the
package really provides.

Cost: CEL has no loops but its comprehension macros (``all``, ``exists``, ``exists_one``,
``map``, ``filter``); nested ones multiply. :meth:`Checked.iterations` bounds the number of
loop steps from the length of the largest list or map in a message, before evaluating.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from app.core.cel_syntax import (
    Binary,
    Call,
    Conditional,
    Ident,
    Index,
    ListLit,
    Literal,
    MapLit,
    Node,
    Select,
    Struct,
    Unary,
)


class CelCheckError(ValueError):
    """The condition cannot work: unknown name or function, or a result that is not a bool."""


COMPREHENSIONS = frozenset({"all", "exists", "exists_one", "map", "filter"})

# Types are plain strings: "dyn", "bool", "int", ..., "list:<elem>", "map:<value>".
DYN = "dyn"
_NUMBERS = frozenset({"int", "uint", "double"})
_DECLARED = {"data": "map:dyn", "topic": "string", "headers": "map:string"}
_TYPE_NAMES = frozenset(
    {"int", "uint", "double", "string", "bytes", "bool", "list", "map", "null_type", "type"}
)
# Functions of the package's default environment, by call style, with their result type.
_METHODS = {
    "contains": "bool",
    "startsWith": "bool",
    "endsWith": "bool",
    "matches": "bool",
    "size": "int",
    "getDayOfYear": "int",
    "getFullYear": "int",
    "getMonth": "int",
    "getDayOfMonth": "int",
    "getDate": "int",
    "getDayOfWeek": "int",
    "getHours": "int",
    "getMinutes": "int",
    "getSeconds": "int",
    "getMilliseconds": "int",
    "hasValue": "bool",
    "value": DYN,
    "orValue": DYN,
    "or": "optional",
}
_FUNCTIONS = {
    "size": "int",
    "int": "int",
    "uint": "uint",
    "double": "double",
    "string": "string",
    "bytes": "bytes",
    "timestamp": "timestamp",
    "duration": "duration",
    "type": "type",
    "dyn": DYN,
}
_OPTIONAL_FUNCTIONS = frozenset({"of", "none", "ofNonZeroValue"})


def _elem(kind: str) -> str:
    """The element type of a list, the value type of a map, else dyn."""
    return kind.split(":", 1)[1] if ":" in kind else DYN


def _common(a: str, b: str) -> str:
    return a if a == b else DYN


def _arithmetic(a: str, b: str) -> str:
    """CEL has no mixed arithmetic: one known side gives the type (times and durations mix)."""
    if {a, b} & {"timestamp", "duration"}:
        return a if a == b == "duration" else DYN
    if a == DYN:
        return b
    if b in (DYN, a):
        return a
    return DYN


@dataclass(frozen=True)
class Checked:
    """What the checker learnt: the result type, macro nesting, and the cost function."""

    result: str
    depth: int
    iterations: Callable[[int], int]
    """Loop steps at most, given the length of the largest list/map a message holds."""

    @property
    def has_comprehension(self) -> bool:
        """Whether any comprehension macro is used (the only source of super-linear cost)."""
        return self.depth > 0


# A cost function: (largest container length in the message) -> loop steps at most.
_Cost = Callable[[int], int]


@dataclass(frozen=True)
class _Info:
    kind: str
    depth: int
    size: _Cost  # bound on the length of any list/map within the value
    work: _Cost  # bound on loop steps to compute it


def _const(n: int) -> _Cost:
    return lambda _largest: n


_ZERO = _const(0)


def _message_size(largest: int) -> int:
    return largest


def _sum(costs: list[_Cost]) -> _Cost:
    if not costs:
        return _ZERO
    return lambda largest: sum(cost(largest) for cost in costs)


def _max(costs: list[_Cost]) -> _Cost:
    if not costs:
        return _ZERO
    return lambda largest: max(cost(largest) for cost in costs)


class _Checker:
    def check(self, node: Node, scope: dict[str, _Info]) -> _Info:
        method = getattr(self, f"_{type(node).__name__.lower()}")
        info: _Info = method(node, scope)
        return info

    def _parts(self, nodes: list[Node], scope: dict[str, _Info]) -> list[_Info]:
        return [self.check(n, scope) for n in nodes]

    @staticmethod
    def _plain(kind: str, parts: list[_Info], size: _Cost = _ZERO) -> _Info:
        return _Info(
            kind,
            max((p.depth for p in parts), default=0),
            size,
            _sum([p.work for p in parts]),
        )

    def _literal(self, node: Literal, _scope: dict[str, _Info]) -> _Info:
        return _Info(node.kind, 0, _ZERO, _ZERO)

    def _ident(self, node: Ident, scope: dict[str, _Info]) -> _Info:
        if node.name in scope:
            return scope[node.name]
        if node.name in _DECLARED:
            return _Info(_DECLARED[node.name], 0, _message_size, _ZERO)
        if node.name in _TYPE_NAMES:
            return _Info("type", 0, _ZERO, _ZERO)
        raise CelCheckError(
            f"undeclared reference to '{node.name}' (declared: data, topic, headers)"
        )

    def _select(self, node: Select, scope: dict[str, _Info]) -> _Info:
        operand = self.check(node.operand, scope)
        if operand.kind not in (DYN, "type") and not operand.kind.startswith("map"):
            raise CelCheckError(f"cannot select field '{node.name}' of a {operand.kind}")
        return _Info(_elem(operand.kind), operand.depth, operand.size, operand.work)

    def _index(self, node: Index, scope: dict[str, _Info]) -> _Info:
        operand, index = self._parts([node.operand, node.index], scope)
        kind = _elem(operand.kind) if operand.kind.startswith(("list", "map")) else DYN
        return _Info(
            kind,
            max(operand.depth, index.depth),
            operand.size,
            _sum([operand.work, index.work]),
        )

    def _listlit(self, node: ListLit, scope: dict[str, _Info]) -> _Info:
        items = self._parts(list(node.items), scope)
        kind = items[0].kind if items and all(i.kind == items[0].kind for i in items) else DYN
        return self._plain(
            f"list:{kind}", items, _max([_const(len(items))] + [i.size for i in items])
        )

    def _maplit(self, node: MapLit, scope: dict[str, _Info]) -> _Info:
        values = self._parts([v for _k, v in node.entries], scope)
        keys = self._parts([k for k, _v in node.entries], scope)
        kinds = {v.kind for v in values}
        kind = kinds.pop() if len(kinds) == 1 else DYN
        parts = keys + values
        return self._plain(
            f"map:{kind}", parts, _max([_const(len(values))] + [p.size for p in parts])
        )

    def _struct(self, node: Struct, _scope: dict[str, _Info]) -> _Info:
        raise CelCheckError(f"message construction '{node.name}{{...}}' is not supported")

    def _unary(self, node: Unary, scope: dict[str, _Info]) -> _Info:
        operand = self.check(node.operand, scope)
        if node.op == "!":
            if operand.kind not in ("bool", DYN):
                raise CelCheckError(f"'!' needs a bool, found {operand.kind}")
            return self._plain("bool", [operand])
        if operand.kind not in _NUMBERS | {DYN, "duration"}:
            raise CelCheckError(f"'-' needs a number, found {operand.kind}")
        return self._plain(operand.kind, [operand])

    def _binary(self, node: Binary, scope: dict[str, _Info]) -> _Info:
        left, right = self._parts([node.left, node.right], scope)
        parts = [left, right]
        if node.op in ("&&", "||"):
            for side in parts:
                if side.kind not in ("bool", DYN):
                    raise CelCheckError(f"'{node.op}' needs bools, found {side.kind}")
            return self._plain("bool", parts)
        if node.op in ("<", "<=", ">=", ">", "==", "!=", "in"):
            return self._plain("bool", parts)
        if node.op == "+":
            kind = _arithmetic(left.kind, right.kind)
            if left.kind.startswith("list") and right.kind.startswith("list"):
                kind = left.kind if left.kind == right.kind else "list:dyn"
            return self._plain(kind, parts, _sum([left.size, right.size]))
        return self._plain(_arithmetic(left.kind, right.kind), parts)

    def _conditional(self, node: Conditional, scope: dict[str, _Info]) -> _Info:
        cond, then, otherwise = self._parts([node.cond, node.then, node.otherwise], scope)
        if cond.kind not in ("bool", DYN):
            raise CelCheckError(f"'?:' needs a bool condition, found {cond.kind}")
        return self._plain(
            _common(then.kind, otherwise.kind),
            [cond, then, otherwise],
            _max([then.size, otherwise.size]),
        )

    def _call(self, node: Call, scope: dict[str, _Info]) -> _Info:
        if node.target is not None and node.name in COMPREHENSIONS:
            return self._comprehension(node, scope)
        if node.target is None and node.name == "has":
            if len(node.args) != 1 or not isinstance(node.args[0], Select):
                raise CelCheckError("has() needs a field selection, e.g. has(data.field)")
            return self._plain("bool", [self.check(node.args[0], scope)])
        if (
            isinstance(node.target, Ident)
            and node.target.name == "optional"
            and "optional" not in scope
            and node.name in _OPTIONAL_FUNCTIONS
        ):
            return self._plain("optional", self._parts(list(node.args), scope))
        args = self._parts(list(node.args), scope)
        if node.target is None:
            if node.name not in _FUNCTIONS:
                raise CelCheckError(f"undeclared reference to function '{node.name}'")
            kind = _FUNCTIONS[node.name]
            if node.name == "dyn" and args:
                return self._plain(DYN, args, args[0].size)
            return self._plain(kind, args)
        target = self.check(node.target, scope)
        if node.name not in _METHODS:
            raise CelCheckError(f"undeclared reference to function '{node.name}'")
        return self._plain(_METHODS[node.name], [target, *args])

    def _comprehension(self, node: Call, scope: dict[str, _Info]) -> _Info:
        arity = (2, 3) if node.name == "map" else (2,)
        if len(node.args) not in arity or not isinstance(node.args[0], Ident):
            raise CelCheckError(f"{node.name}() needs a variable name and an expression")
        var = node.args[0].name
        source = self.check(node.target or ListLit(()), scope)
        if source.kind not in (DYN, "type") and not source.kind.startswith(("list", "map")):
            raise CelCheckError(f"{node.name}() needs a list or a map, found {source.kind}")
        # A list's loop variable is an element; a map's is a key (of any type).
        elem = _elem(source.kind) if source.kind.startswith("list") else DYN
        bound = _Info(elem, 0, source.size, _ZERO)
        body = self._parts(list(node.args[1:]), {**scope, var: bound})
        for predicate in body[: len(body) - 1] if node.name == "map" else body:
            if predicate.kind not in ("bool", DYN):
                raise CelCheckError(f"{node.name}() needs a bool predicate, found {predicate.kind}")
        if node.name in ("map", "filter"):
            kind = f"list:{body[-1].kind}" if node.name == "map" else f"list:{elem}"
            size = _max([source.size, *(b.size for b in body)])
        else:
            kind, size = "bool", _ZERO
        body_work = _sum([b.work for b in body])
        source_size, source_work = source.size, source.work

        def work(largest: int) -> int:
            return source_work(largest) + source_size(largest) * (1 + body_work(largest))

        depth = max(source.depth, 1 + max(b.depth for b in body))
        return _Info(kind, depth, size, work)


def check(tree: Node) -> Checked:
    """Check ``tree`` as a condition; raises :class:`CelCheckError` when it cannot work."""
    info = _Checker().check(tree, {})
    if info.kind not in ("bool", DYN):
        shown = {"null_type": "null"}.get(info.kind, info.kind.split(":", 1)[0])
        raise CelCheckError(f"a condition must return a bool, this one returns {shown}")
    return Checked(info.kind, info.depth, info.work)
