"""Strict input parsing (common/inputs.py): the shapes refused before any conversion."""

from __future__ import annotations

import sys
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from l2chaos.childproc import run_captured
from l2chaos.stacks.perpdex.common.inputs import (
    MAX_JSON_DEPTH,
    InputError,
    loads_bounded,
    parse_decimal,
    parse_int_text,
)
from l2chaos.stacks.perpdex.markets import MARKETS, UnitError, parse_quote

ETH = MARKETS["ETH-USD-PERP"]


@pytest.mark.parametrize(
    ("text", "value"),
    [("12.5", "12.5"), ("-3", "-3"), ("0.000001", "0.000001"), (".5", "0.5"), ("1e3", "1000")],
)
def test_decimal_forms_accepted(text: str, value: str) -> None:
    assert parse_decimal(text, "x") == Decimal(value)


@pytest.mark.parametrize(
    "text",
    [
        "1e999990",  # the 37-second withdrawal
        "1e999999999",
        "0.00_1",  # Python's digit separators
        "\u0661",  # Arabic-Indic one
        "\uff11",  # fullwidth one
        " 1",
        "1 ",
        "+1",
        "1e100",
        "NaN",
        "Infinity",
        "0x10",
        "1." + "0" * 40,
        "",
        "1\n",
    ],
)
def test_decimal_forms_refused(text: str) -> None:
    with pytest.raises(InputError, match="decimal string"):
        parse_decimal(text, "x")


def test_decimal_numbers_and_wrong_types() -> None:
    assert parse_decimal(7, "x") == 7
    assert parse_decimal(0.25, "x") == Decimal("0.25")
    for bad in (True, None, [1], {"a": 1}, 2**62, 1e300, float("inf")):
        with pytest.raises(InputError):
            parse_decimal(bad, "x")


def test_units_keep_every_digit() -> None:
    """A 30-digit price would round to an integer under the default 28-digit context."""
    with pytest.raises(UnitError, match="tick"):
        ETH.price_from_usd("1.00000000000000000000000000001")
    assert parse_quote("1e2") == 100_000_000
    with pytest.raises(UnitError, match="decimal string"):
        parse_quote("1e999990")


def test_int_text() -> None:
    assert parse_int_text("42", "id") == 42
    assert parse_int_text("-4", "account", minimum=-10) == -4
    for bad in ("\u00b2", "\u0661", "1_0", " 1", "0", "-1", "9" * 20, "", "1.0"):
        with pytest.raises(InputError, match="id must be an integer"):
            parse_int_text(bad, "id")


def test_json_bounds() -> None:
    assert loads_bounded(b'{"a": [1, {"b": 2}]}') == {"a": [1, {"b": 2}]}
    nested = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert loads_bounded(nested) is not None
    for deep in (MAX_JSON_DEPTH + 1, 100_000):
        with pytest.raises(InputError, match="nested deeper"):
            loads_bounded(b"[" * deep + b"]" * deep)
    with pytest.raises(InputError, match="nested deeper"):
        loads_bounded(b'{"a":' * 40 + b"1" + b"}" * 40)
    for bad in (b"NaN", b'{"f": Infinity}', b"[-Infinity]", b"\xff", b"{"):
        with pytest.raises(InputError, match="not valid JSON"):
            loads_bounded(bad)


@given(st.text(max_size=60))
def test_any_text_is_a_decimal_or_refused_cleanly(text: str) -> None:
    try:
        d = parse_decimal(text, "x")
    except InputError:
        return
    assert d.is_finite()
    assert text.isascii()


def test_brackets_inside_strings_are_not_nesting() -> None:
    text = '{"a": "\\\\\\"' + "[" * 100 + '", "b": ["{{{{"]}'
    assert loads_bounded(text.encode())["b"] == ["{{{{"]


def test_depth_is_refused_before_parsing_even_with_a_raised_recursion_limit() -> None:
    """A library that raises the recursion limit (py_ecc does) must not turn a deep body
    into a crash: the depth is checked before the parser recurses."""
    code = (
        "import sys; sys.setrecursionlimit(1_000_000)\n"
        "from l2chaos.stacks.perpdex.common.inputs import InputError, loads_bounded\n"
        "try:\n    loads_bounded(b'[' * 500_000 + b']' * 500_000)\n"
        "except InputError as exc:\n    print(exc)\n"
    )
    done = run_captured([sys.executable, "-c", code], timeout_s=120)
    assert done.returncode == 0, done.stderr
    assert "nested deeper than" in done.stdout
