"""Durations as written in scenarios: ``500ms``, ``30s``, ``2m``, ``1h``, ``1m30s``.

Internally a duration is whole nanoseconds (an int, or a `Duration` in typed
parameters); floats never accumulate error over a timeline. A bare number is rejected (is ``30`` seconds or milliseconds?). Parsing is
exact (decimal fractions, no float) and bounded: at most `MAX_TEXT` characters and at
most `MAX_NS` (366 days) either way, so a 400-digit duration is a clear error, not an
overflow deep inside a run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["ALLOWED", "SCHEMA_PATTERN", "Duration", "format_duration", "parse_duration"]

_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ns|us|ms|s|m|h))+")

ALLOWED = "a duration such as 500ms, 30s, 2m or 1m30s"
MAX_NS = 366 * 24 * 3_600_000_000_000
MAX_TEXT = 64


def parse_duration(text: str) -> int:
    """Parse a duration into nanoseconds. Raises ValueError with what is allowed."""
    if not isinstance(text, str):
        raise ValueError(f"expected {ALLOWED}, got {_short(text)}")
    if len(text) > MAX_TEXT:
        raise ValueError(f"expected {ALLOWED}, got {len(text)} characters ({_short(text)})")
    s = text.strip().replace(" ", "")
    neg = s.startswith("-")
    if neg:
        s = s[1:]
    if not s or not _WHOLE.fullmatch(s):
        raise ValueError(f"expected {ALLOWED}, got {text!r}")
    total = Fraction(0)
    for number, unit in _PART.findall(s):
        total += Fraction(number) * _UNITS_NS[unit]
    ns = round(total)
    if ns > MAX_NS:
        raise ValueError(f"expected {ALLOWED}, at most 366 days, got {_short(text)}")
    return -ns if neg else ns


def _short(value: object) -> str:
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."


def format_duration(ns: int) -> str:
    """Render nanoseconds in the shortest exact unit: 1500ms, 30s, 2m."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    for unit in ("h", "m", "s", "ms", "us", "ns"):
        size = _UNITS_NS[unit]
        if ns % size == 0:
            return f"{sign}{ns // size}{unit}"
    return f"{sign}{ns}ns"  # pragma: no cover - ns always divides


@dataclass(frozen=True, order=True, slots=True)
class Duration:
    """A length of time in whole nanoseconds: the one duration type of parameters.

    Not a number, so mypy catches a duration passed where seconds (a float) or a count
    is expected: say `.seconds`, `.millis` or `.ns`. Written in YAML as ``500ms``, ``30s``;
    recorded in JSON as its nanoseconds."""

    ns: int

    @classmethod
    def of(
        cls, *, h: float = 0, m: float = 0, s: float = 0, ms: float = 0, us: float = 0
    ) -> Duration:
        """``Duration.of(s=4)``, ``Duration.of(ms=500)``: exact for whole units."""
        total = h * _UNITS_NS["h"] + m * _UNITS_NS["m"] + s * _UNITS_NS["s"]
        return cls(round(total + ms * _UNITS_NS["ms"] + us * _UNITS_NS["us"]))

    @classmethod
    def parse(cls, text: str) -> Duration:
        """``Duration.parse("1m30s")``; ValueError says what is allowed."""
        return cls(parse_duration(text))

    @property
    def seconds(self) -> float:
        return self.ns / _UNITS_NS["s"]

    @property
    def millis(self) -> float:
        return self.ns / _UNITS_NS["ms"]

    def __add__(self, other: Duration) -> Duration:
        return Duration(self.ns + other.ns)

    def __sub__(self, other: Duration) -> Duration:
        return Duration(self.ns - other.ns)

    def __mul__(self, factor: float) -> Duration:
        """Scaled, rounded to whole nanoseconds (a time_scale, a count of intervals)."""
        return Duration(round(self.ns * factor))

    __rmul__ = __mul__

    def __bool__(self) -> bool:
        return self.ns != 0

    def __str__(self) -> str:
        return format_duration(self.ns)


# What parse_duration accepts, as a JSON schema pattern (editors validate with it).
SCHEMA_PATTERN = r"^\s*-?(\s*\d+(\.\d+)?\s*(ns|us|ms|s|m|h))+\s*$"
