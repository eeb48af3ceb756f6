"""Typed parameters with defaults and validation, shared by faults, invariants,
personas and stack settings.

A component declares its parameters as a tuple of `Param`; `bind_params` checks a
mapping from a scenario against them and returns plain values (durations become
nanoseconds). Every problem raises `ScenarioError` naming file, line and field path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .durations import ALLOWED as DURATION_ALLOWED
from .durations import format_duration, parse_duration
from .errors import ScenarioError
from .yamlsrc import LocDict, line_of

__all__ = ["REQUIRED", "Param", "ParamKind", "Where", "bind_params", "describe_default"]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()

ParamKind = Literal[
    "duration",
    "duration_range",
    "int",
    "float",
    "ratio",
    "str",
    "bool",
    "enum",
    "str_list",
    "range",
    "mapping",
    "mapping_list",
]


@dataclass(frozen=True)
class Param:
    """One parameter: name, kind, default (or REQUIRED), help, and limits.

    kinds: duration (ns int), int, float, ratio (float in [0, 1]), str, bool,
    enum (one of `choices`), str_list, range ([lo, hi] of numbers), mapping (free dict).
    A duration `range` (e.g. a hold time) is written as ["2s", "8s"] only when kind is
    "duration_range".
    """

    name: str
    kind: ParamKind
    default: Any = REQUIRED
    help: str = ""
    choices: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    # A duration that is part of the schedule (a downtime, an interval) shrinks with the
    # scenario's time_scale; magnitudes (a latency, an RTO) do not.
    schedule: bool = False

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def _timed(self) -> bool:
        return self.kind in ("duration", "duration_range")

    def allowed(self) -> str:
        """What values are allowed, in words, for error messages and docs."""
        base = {
            "duration": DURATION_ALLOWED,
            "int": "an integer",
            "float": "a number",
            "ratio": "a number between 0 and 1",
            "str": "a string",
            "bool": "true or false",
            "enum": "one of " + ", ".join(self.choices),
            "str_list": "a list of strings",
            "range": "a pair [low, high] of numbers",
            "duration_range": "a pair [low, high] of durations such as [2s, 8s]",
            "mapping": "a mapping",
            "mapping_list": "a list of mappings",
        }[self.kind]
        bounds = []
        if self.min is not None:
            lo = format_duration(int(self.min)) if self._timed else f"{self.min:g}"
            bounds.append(f">= {lo}")
        if self.max is not None:
            hi = format_duration(int(self.max)) if self._timed else f"{self.max:g}"
            bounds.append(f"<= {hi}")
        return base + (f" ({', '.join(bounds)})" if bounds else "")


def describe_default(p: Param) -> str:
    """The default as a user would write it in YAML."""
    if p.required:
        return "required"
    if p.kind == "duration" and isinstance(p.default, int):
        return format_duration(p.default)
    if p.kind == "duration_range" and isinstance(p.default, (list, tuple)):
        return "[" + ", ".join(format_duration(int(v)) for v in p.default) + "]"
    if isinstance(p.default, bool):
        return "true" if p.default else "false"
    return repr(p.default) if isinstance(p.default, str) else str(p.default)


@dataclass(frozen=True)
class Where:
    """Where a mapping of parameters sits: file and field path (e.g. timeline[2].with)."""

    file: str | None
    path: str

    def child(self, key: str | int) -> Where:
        if isinstance(key, int):
            return Where(self.file, f"{self.path}[{key}]")
        return Where(self.file, f"{self.path}.{key}" if self.path else key)

    def error(
        self, problem: str, container: object = None, key: str | int | None = None
    ) -> ScenarioError:
        return ScenarioError(
            problem, file=self.file, line=line_of(container, key), field=self.path or None
        )


def _coerce(p: Param, value: Any, where: Where, container: object, key: str) -> Any:
    def bad(extra: str = "") -> ScenarioError:
        return where.error(f"expected {p.allowed()}, got {value!r}{extra}", container, key)

    if p.kind == "duration":
        try:
            out: Any = parse_duration(value)
        except ValueError:
            raise bad() from None
        if out <= 0 and (p.min is None or p.min > 0):
            raise where.error(f"must be a positive duration, got {value!r}", container, key)
    elif p.kind == "duration_range":
        if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != 2:
            raise bad()
        try:
            out = [parse_duration(value[0]), parse_duration(value[1])]
        except ValueError:
            raise bad() from None
        if out[0] < 0 or out[0] > out[1]:
            raise bad()
    elif p.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
        out = value
    elif p.kind in ("float", "ratio"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad()
        out = float(value)
        if p.kind == "ratio" and not 0.0 <= out <= 1.0:
            raise bad()
    elif p.kind == "str":
        if not isinstance(value, str):
            raise bad()
        out = value
    elif p.kind == "bool":
        if not isinstance(value, bool):
            raise bad()
        out = value
    elif p.kind == "enum":
        if value not in p.choices:
            raise bad()
        out = value
    elif p.kind == "str_list":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
            raise bad()
        out = list(value)
    elif p.kind == "range":
        ok = (
            isinstance(value, Sequence)
            and not isinstance(value, str)
            and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        )
        if not ok or value[0] > value[1]:
            raise bad()
        out = [value[0], value[1]]
    elif p.kind == "mapping_list":
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise bad()
        if not all(isinstance(v, Mapping) for v in value):
            raise bad()
        out = value  # kept as loaded, with its line numbers, for nested validation
    else:  # mapping
        if not isinstance(value, Mapping):
            raise bad()
        out = dict(value)
    _check_bounds(p, out, where, container, key, value)
    return out


def _check_bounds(p: Param, out: Any, where: Where, container: object, key: str, raw: Any) -> None:
    values: list[float]
    if p.kind in ("int", "float", "ratio", "duration"):
        values = [out]
    elif p.kind in ("range", "duration_range"):
        values = list(out)
    else:
        return
    for v in values:
        if (p.min is not None and v < p.min) or (p.max is not None and v > p.max):
            raise where.error(f"expected {p.allowed()}, got {raw!r}", container, key)


def bind_params(
    specs: Sequence[Param], given: Mapping[str, Any] | None, where: Where
) -> dict[str, Any]:
    """Validate `given` against `specs`; return every parameter with defaults filled in."""
    given = given if given is not None else LocDict()
    if not isinstance(given, Mapping):
        raise where.error(f"expected a mapping of parameters, got {given!r}")
    by_name = {p.name: p for p in specs}
    for key in given:
        if key not in by_name:
            allowed = ", ".join(sorted(by_name)) or "none (this takes no parameters)"
            raise where.child(key).error(
                f"unknown parameter {key!r}; allowed: {allowed}", given, key
            )
    out: dict[str, Any] = {}
    for p in specs:
        if p.name in given:
            out[p.name] = _coerce(p, given[p.name], where.child(p.name), given, p.name)
        elif p.required:
            raise where.error(f"missing required parameter {p.name!r} ({p.allowed()})", given)
        else:
            out[p.name] = p.default
    return out
