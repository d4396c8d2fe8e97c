# Over 350 lines on purpose: one recursive-descent parser of the CEL grammar.
"""A small CEL parser: the syntax tree the ``cel`` package compiles but does not expose.

The ``common-expression-language`` package parses and evaluates but offers no checker and
no tree; :mod:`app.core.cel_check` needs one to type-check a condition against its declared
variables and to bound its cost. The grammar is CEL's (cel-spec ``langdef.md``); an
expression reaches this parser only after the package has accepted it, so anything this
parser refuses is reported as a construct hookline cannot check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


class CelSyntaxError(ValueError):
    """The expression uses syntax this parser does not know."""


# -- the tree ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """Base of every tree node."""


@dataclass(frozen=True)
class Literal(Node):
    """A constant; ``kind`` is its CEL type name (``int``, ``string``, ``null_type``...)."""

    kind: str


@dataclass(frozen=True)
class Ident(Node):
    """A bare name: a variable, a macro's loop variable or a type name."""

    name: str


@dataclass(frozen=True)
class Select(Node):
    """``operand.name``."""

    operand: Node
    name: str


@dataclass(frozen=True)
class Index(Node):
    """``operand[index]``."""

    operand: Node
    index: Node


@dataclass(frozen=True)
class Call(Node):
    """``name(args)`` or ``target.name(args)`` (macros included)."""

    target: Node | None
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class ListLit(Node):
    """``[a, b, ...]``."""

    items: tuple[Node, ...]


@dataclass(frozen=True)
class MapLit(Node):
    """``{k: v, ...}``."""

    entries: tuple[tuple[Node, Node], ...]


@dataclass(frozen=True)
class Struct(Node):
    """``Type{field: value}`` (protobuf messages: not enabled in the package)."""

    name: str
    fields: tuple[tuple[str, Node], ...] = field(default=())


@dataclass(frozen=True)
class Unary(Node):
    """``!x`` or ``-x``."""

    op: str
    operand: Node


@dataclass(frozen=True)
class Binary(Node):
    """``l op r`` for arithmetic, comparison, ``in``, ``&&`` and ``||``."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Conditional(Node):
    """``cond ? then : otherwise``."""

    cond: Node
    then: Node
    otherwise: Node


# -- tokens -----------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<space>\s+|//[^\n]*)
  | (?P<string>(?:[rR][bB]?|[bB][rR]?)?(?:'''|\"\"\"|'|\"))
  | (?P<double>(?:\d+\.\d+(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+))
  | (?P<hex>0[xX][0-9a-fA-F]+[uU]?)
  | (?P<int>\d+[uU]?)
  | (?P<ident>[_a-zA-Z][_a-zA-Z0-9]*)
  | (?P<op>==|!=|<=|>=|&&|\|\||[<>!+\-*/%?:.,()\[\]{}])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    """One lexeme: ``kind`` is a literal kind, ``ident`` or ``op``; ``text`` its value."""

    kind: str
    text: str
    pos: int


def _string_end(source: str, start: int, prefix_len: int, quote: str) -> int:
    """Index just past the string literal whose quote begins at ``start + prefix_len``."""
    raw = "r" in source[start : start + prefix_len].lower()
    i = start + prefix_len + len(quote)
    while i < len(source):
        if source.startswith(quote, i):
            return i + len(quote)
        if source[i] == "\\" and not raw:
            i += 2
            continue
        if source[i] == "\n" and len(quote) == 1:
            break
        i += 1
    raise CelSyntaxError(f"unterminated string at {start}")


def tokenize(source: str) -> list[Token]:
    """Split ``source`` into tokens (comments and spaces dropped)."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if match is None:
            raise CelSyntaxError(f"unexpected character {source[pos]!r} at {pos}")
        kind = match.lastgroup or ""
        if kind == "string":
            opener = match.group()
            quote = opener.lstrip("rRbB")
            end = _string_end(source, pos, len(opener) - len(quote), quote)
            is_bytes = "b" in opener[: len(opener) - len(quote)].lower()
            tokens.append(Token("bytes" if is_bytes else "string", source[pos:end], pos))
            pos = end
            continue
        text = match.group()
        if kind in {"hex", "int"}:
            kind = "uint" if text[-1] in "uU" else "int"
        elif kind == "ident" and text in ("true", "false"):
            kind = "bool"
        elif kind == "ident" and text == "null":
            kind = "null_type"
        elif kind == "ident" and text == "in":
            kind = "op"
        if kind != "space":
            tokens.append(Token(kind, text, pos))
        pos = match.end()
    return tokens


# -- the parser -------------------------------------------------------------------------

_RELATIONS = ("<", "<=", ">=", ">", "==", "!=", "in")
_LITERALS = ("int", "uint", "double", "string", "bytes", "bool", "null_type")


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self._tokens = tokens
        self._i = 0

    def _peek(self, offset: int = 0) -> Token | None:
        i = self._i + offset
        return self._tokens[i] if i < len(self._tokens) else None

    def _at(self, text: str) -> bool:
        token = self._peek()
        return token is not None and token.kind == "op" and token.text == text

    def _take(self, text: str) -> bool:
        if self._at(text):
            self._i += 1
            return True
        return False

    def _expect(self, text: str) -> None:
        if not self._take(text):
            token = self._peek()
            where = f"{token.text!r} at {token.pos}" if token else "the end"
            raise CelSyntaxError(f"expected {text!r}, found {where}")

    def _ident(self) -> str:
        token = self._peek()
        if token is None or token.kind != "ident":
            raise CelSyntaxError("expected a name")
        self._i += 1
        return token.text

    def parse(self) -> Node:
        node = self._expr()
        token = self._peek()
        if token is not None:
            raise CelSyntaxError(f"unexpected {token.text!r} at {token.pos}")
        return node

    def _expr(self) -> Node:
        cond = self._or()
        if self._take("?"):
            then = self._or()
            self._expect(":")
            return Conditional(cond, then, self._expr())
        return cond

    def _or(self) -> Node:
        node = self._and()
        while self._take("||"):
            node = Binary("||", node, self._and())
        return node

    def _and(self) -> Node:
        node = self._relation()
        while self._take("&&"):
            node = Binary("&&", node, self._relation())
        return node

    def _relation(self) -> Node:
        node = self._addition()
        while (
            (token := self._peek()) is not None and token.kind == "op" and token.text in _RELATIONS
        ):
            self._i += 1
            node = Binary(token.text, node, self._addition())
        return node

    def _addition(self) -> Node:
        node = self._multiplication()
        while (token := self._peek()) is not None and token.kind == "op" and token.text in "+-":
            self._i += 1
            node = Binary(token.text, node, self._multiplication())
        return node

    def _multiplication(self) -> Node:
        node = self._unary()
        while (token := self._peek()) is not None and token.kind == "op" and token.text in "*/%":
            self._i += 1
            node = Binary(token.text, node, self._unary())
        return node

    def _unary(self) -> Node:
        for op in ("!", "-"):
            if self._take(op):
                return Unary(op, self._unary())
        return self._member()

    def _member(self) -> Node:
        node = self._primary()
        while True:
            if self._take("."):
                name = self._ident()
                call = self._take("(")
                node = Call(node, name, self._list(")")) if call else Select(node, name)
            elif self._take("["):
                index = self._expr()
                self._expect("]")
                node = Index(node, index)
            else:
                return node

    def _list(self, close: str) -> tuple[Node, ...]:
        items: list[Node] = []
        while not self._take(close):
            items.append(self._expr())
            if not self._take(","):
                self._expect(close)
                break
        return tuple(items)

    def _primary(self) -> Node:
        token = self._peek()
        if token is None:
            raise CelSyntaxError("unexpected end of expression")
        self._i += 1
        if token.kind in _LITERALS:
            return Literal(token.kind)
        if token.kind == "ident" or (token.kind == "op" and token.text == "."):
            name = self._ident() if token.text == "." else token.text
            if self._take("("):
                return Call(None, name, self._list(")"))
            if self._at("{") and self._struct_ahead():
                return self._struct(name)
            return Ident(name)
        if token.text == "(":
            node = self._expr()
            self._expect(")")
            return node
        if token.text == "[":
            return ListLit(self._list("]"))
        if token.text == "{":
            entries: list[tuple[Node, Node]] = []
            while not self._take("}"):
                key = self._expr()
                self._expect(":")
                entries.append((key, self._expr()))
                if not self._take(","):
                    self._expect("}")
                    break
            return MapLit(tuple(entries))
        raise CelSyntaxError(f"unexpected {token.text!r} at {token.pos}")

    def _struct_ahead(self) -> bool:
        after = self._peek(1)
        return after is not None and (after.kind == "ident" or after.text == "}")

    def _struct(self, name: str) -> Node:
        self._expect("{")
        fields: list[tuple[str, Node]] = []
        while not self._take("}"):
            field_name = self._ident()
            self._expect(":")
            fields.append((field_name, self._expr()))
            if not self._take(","):
                self._expect("}")
                break
        return Struct(name, tuple(fields))


def parse(source: str) -> Node:
    """The syntax tree of ``source``; raises :class:`CelSyntaxError`."""
    return _Parser(tokenize(source)).parse()
