"""JSON on hot paths: delivery bodies, size accounting, and strict decoding of requests.

JSON (RFC 8259) has no ``NaN`` or ``Infinity``, no number beyond the double range and no
lone UTF-16 surrogate: Python's ``json`` accepts all of them, and they either change on the
way (a non-finite number goes out as ``null``) or cannot be encoded at all (a surrogate has
no UTF-8 form). :func:`decode_json` refuses them where they come in.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson


def encode_json(document: object) -> bytes:
    """Compact UTF-8 JSON.

    orjson is several times faster than the stdlib; the stdlib takes over for what orjson
    refuses (integers beyond 64 bits, which JSON allows and Python parses).
    """
    try:
        return orjson.dumps(document)
    except TypeError:
        return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


class UnrepresentableJsonError(ValueError):
    """Syntactically parseable JSON holding a value JSON cannot carry; ``path`` locates it."""

    def __init__(self, path: list[str], problem: str, kind: str) -> None:
        """``path``: keys and indexes down to the value; ``kind``: a stable error type."""
        where = ".".join(path) or "(root)"
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.problem = problem
        self.kind = kind


_ALL_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_RUN = b"0" * 19
"""orjson turns integers beyond 64 bits into floats; a body that may hold one (19 ASCII
digits in a row) takes the stdlib path, which keeps them exact (such runs also occur in
strings: harmless). Every digit becomes ``0`` and the run is searched as a substring: both
in C, about ten times faster than a regular expression over a 1 KB body."""


def _may_hold_long_integer(data: bytes) -> bool:
    return _LONG_RUN in data.translate(_ALL_ZERO)


def decode_json(raw: bytes | str) -> Any:
    """Parse a request body as strict JSON.

    Raises :class:`json.JSONDecodeError` for text that is not JSON at all and
    :class:`UnrepresentableJsonError` for ``NaN``, ``Infinity``, ``-Infinity``, a number
    beyond the double range (``1e400``), an integer of more than
    :data:`MAX_INTEGER_DIGITS` digits or a string (value or key) with a lone surrogate.
    Valid input costs one orjson parse.
    """
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if not _may_hold_long_integer(data):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # not strict JSON: the stdlib says why, or takes what orjson cannot
    value = json.loads(
        raw, parse_constant=_NotANumber, parse_float=_finite_float, parse_int=_bounded_int
    )
    problem = _first_problem(value)
    if problem is not None:
        raise problem
    return value


class _NotANumber:
    """A number JSON cannot carry, kept as its source text until it is reported."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


MAX_INTEGER_DIGITS = 4300
"""The longest integer a body may hold (CPython's own bound on converting text to ``int``,
which would otherwise fail the parse with no location)."""


class _HugeInteger:
    """An integer longer than :data:`MAX_INTEGER_DIGITS`, kept as its length."""

    __slots__ = ("digits",)

    def __init__(self, digits: int) -> None:
        self.digits = digits


def _bounded_int(text: str) -> int | _HugeInteger:
    digits = len(text.lstrip("-"))
    return int(text) if digits <= MAX_INTEGER_DIGITS else _HugeInteger(digits)


def _finite_float(text: str) -> float | _NotANumber:
    number = float(text)
    return number if math.isfinite(number) else _NotANumber(text)


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


_SURROGATE = "a lone UTF-16 surrogate ({}), which is not text and has no UTF-8 form"


def _surrogate(text: str) -> str:
    first = next(c for c in text if 0xD800 <= ord(c) <= 0xDFFF)
    return f"\\u{ord(first):04x}"


def _first_problem(value: Any) -> UnrepresentableJsonError | None:
    """The first unrepresentable value in document order (iterative: any depth)."""
    stack: list[tuple[list[str], Any]] = [([], value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, _NotANumber):
            if item.text.lstrip("-") in ("NaN", "Infinity"):
                problem = f"{item.text} is not a JSON number (JSON has no NaN or Infinity)"
            else:
                problem = f"{item.text} is beyond the range of a JSON number (a double)"
            return UnrepresentableJsonError(path, problem, "json_number_out_of_range")
        if isinstance(item, _HugeInteger):
            problem = (
                f"an integer of {item.digits} digits is longer than the "
                f"{MAX_INTEGER_DIGITS} digits a number may have"
            )
            return UnrepresentableJsonError(path, problem, "json_number_out_of_range")
        if isinstance(item, str):
            if _has_surrogate(item):
                message = "the string holds " + _SURROGATE.format(_surrogate(item))
                return UnrepresentableJsonError(path, message, "json_lone_surrogate")
        elif isinstance(item, dict):
            children: list[tuple[list[str], Any]] = []
            for key, child in item.items():
                if _has_surrogate(key):
                    shown = key.encode("utf-8", "backslashreplace").decode()
                    message = f'the key "{shown}" holds ' + _SURROGATE.format(_surrogate(key))
                    return UnrepresentableJsonError(path, message, "json_lone_surrogate")
                children.append(([*path, key], child))
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend(reversed([([*path, str(i)], c) for i, c in enumerate(item)]))
    return None
