"""Strict parsing of what clients send, before anything is converted or computed.

Every service reads request bodies and path parameters through these helpers, so a
hostile input is refused by its shape and size, never after an expensive conversion:

- JSON bodies: at most `max_bytes` (the service's limit), nested at most
  `MAX_JSON_DEPTH` deep, no `NaN`/`Infinity` literals;
- decimal amounts (money, sizes, prices): ASCII digits only, an optional `-`, at most
  one `.`, an optional exponent of at most two digits, `MAX_DECIMAL_CHARS` characters
  at most (so "1e999990", "0.00_1" and Arabic-Indic digits never reach `Decimal`);
- integers in paths and bodies: ASCII digits, bounded by `MAX_INT`.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

__all__ = [
    "MAX_DECIMAL_CHARS",
    "MAX_INT",
    "MAX_JSON_DEPTH",
    "InputError",
    "loads_bounded",
    "parse_decimal",
    "parse_int_text",
]

MAX_JSON_DEPTH = 32
MAX_DECIMAL_CHARS = 40
MAX_INT = 2**62  # every integer must fit a Postgres bigint with room for sums

_STRUCTURE = re.compile(rb'["\\\[\]{}]')
_DECIMAL = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,2})?")
_INT = re.compile(r"-?[0-9]{1,19}")


class InputError(ValueError):
    """What a client sent does not have the allowed shape; the message says what is."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def _depth(obj: Any) -> int:
    """Nesting depth of parsed JSON, iteratively (a deep value cannot overflow the stack)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        value, d = stack.pop()
        if isinstance(value, dict):
            value = value.values()
        elif not isinstance(value, list):
            continue
        deepest = max(deepest, d)
        if deepest > MAX_JSON_DEPTH:
            break
        stack.extend((v, d + 1) for v in value if isinstance(v, (dict, list)))
    return deepest


def _too_deep(raw: bytes) -> bool:
    """Whether the JSON text nests deeper than the limit, by its brackets outside strings,
    before it is parsed: the parser recurses, and a raised recursion limit (some
    libraries raise it) would let a deep body crash the process instead of failing."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return False
    depth, in_string, skip = 0, False, -1
    for m in _STRUCTURE.finditer(raw):
        pos = m.start()
        if pos < skip:
            continue
        c = raw[pos]
        if in_string:
            if c == 0x5C:  # a backslash: the next byte is escaped
                skip = pos + 2
            elif c == 0x22:
                in_string = False
        elif c == 0x22:
            in_string = True
        elif c in (0x5B, 0x7B):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        elif c in (0x5D, 0x7D):
            depth -= 1
    return False


def loads_bounded(raw: bytes) -> Any:
    """JSON from bytes; InputError for invalid JSON, NaN/Infinity or nesting too deep."""
    if _too_deep(raw):
        raise InputError(f"the body is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        text = raw.decode("utf-8")
        obj = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise InputError(f"the body is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"the body is not valid JSON: {exc}") from None
    if _depth(obj) > MAX_JSON_DEPTH:
        raise InputError(f"the body is nested deeper than {MAX_JSON_DEPTH} levels")
    return obj


def parse_decimal(value: Any, what: str) -> Decimal:
    """A decimal number from a string (strict grammar, see above), an integer or a float."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        raise InputError(f'{what} must be a decimal string like "12.5", got {_show(value)}')
    if isinstance(value, int):
        if abs(value) >= MAX_INT:
            raise InputError(f"{what} is out of range (at most 2**62), got {_show(value)}")
        return Decimal(value)
    text = (
        value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)
    )
    if len(text) > MAX_DECIMAL_CHARS or not _DECIMAL.fullmatch(text):
        raise InputError(
            f"{what} must be a decimal string like \"12.5\" (ASCII digits, at most one '.', "
            f"an exponent of at most 2 digits, {MAX_DECIMAL_CHARS} characters), got {_show(value)}"
        )
    return Decimal(text)


def parse_int_text(raw: str, what: str, *, minimum: int = 1) -> int:
    """An integer written in ASCII digits (a path parameter), minimum <= n < 2**62."""
    if not _INT.fullmatch(raw) or not minimum <= int(raw) < MAX_INT:
        raise InputError(f"{what} must be an integer from {minimum} to 2**62-1, got {_show(raw)}")
    return int(raw)


def _show(value: Any) -> str:
    """A value for an error message: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= 48 else text[:45] + "..."
