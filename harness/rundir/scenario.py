"""scenario.resolved.json: the scenario as it ran (docs/architecture.md, "Run directory").

`Scenario.resolved()` writes a `ResolvedScenario`; `l2chaos check` reads the same type
back, and `from_json` is the one place the file's shape is checked: a wrong shape is
an input error naming the file and the field (exit 2). Parameters, sometimes rules and
expectations stay JSON here; their owners (the checker's model, `SometimesRule`,
`Expectation`) read them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from l2chaos.errors import UsageError
from l2chaos.params import JsonValue

from .json_types import JsonObject, fields_json

__all__ = ["SCENARIO_JSON", "CheckerUse", "JsonObject", "ResolvedScenario", "StackUse"]

SCENARIO_JSON = "scenario.resolved.json"


@dataclass(frozen=True)
class CheckerUse:
    """An `invariants[]` entry: a checker's name and its bound parameters as JSON
    (written as its fields, `fields_json`)."""

    name: str
    params: JsonValue = None


@dataclass(frozen=True)
class StackUse:
    """The stack the scenario ran against (written as its fields, `fields_json`)."""

    ref: str | None = None
    name: str | None = None
    path: str | None = None
    profile: str | None = None
    switches: JsonObject = field(default_factory=dict)
    settings: JsonObject = field(default_factory=dict)


@dataclass(frozen=True)
class ResolvedScenario:
    """The scenario after overrides and time scaling, durations in ns."""

    name: str | None = None
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    source: str | None = None
    overrides: list[str] = field(default_factory=list)
    seed: int | None = None
    profile: str | None = None
    stack: StackUse | None = None
    backend: str | None = None
    duration_ns: int | None = None
    time_scale: float | None = None
    load: JsonObject | None = None
    timeline: list[JsonObject] = field(default_factory=list)
    invariants: list[CheckerUse] | None = None  # None: every registered checker
    sometimes: list[JsonObject] = field(default_factory=list)
    expect: dict[str, JsonObject] = field(default_factory=dict)

    def to_json(self) -> JsonObject:
        return {
            "name": self.name,
            "description": self.description,
            "tags": list(self.tags),
            "source": self.source,
            "overrides": list(self.overrides),
            "seed": self.seed,
            "profile": self.profile,
            "stack": None if self.stack is None else fields_json(self.stack),
            "backend": self.backend,
            "duration_ns": self.duration_ns,
            "time_scale": self.time_scale,
            "load": self.load,
            "timeline": list(self.timeline),
            "invariants": None
            if self.invariants is None
            else [fields_json(use) for use in self.invariants],
            "sometimes": list(self.sometimes),
            "expect": dict(self.expect),
        }

    @classmethod
    def from_json(cls, data: Any, file: Path | str = SCENARIO_JSON) -> ResolvedScenario:
        """Read the file of any readable record version (the shape has not changed)."""
        r = _Reader(file)
        doc = r.object(data, None)
        stack = doc.get("stack")
        return cls(
            name=r.opt(doc, "name", str),
            description=r.opt(doc, "description", str),
            tags=r.strings(doc, "tags"),
            source=r.opt(doc, "source", str),
            overrides=r.strings(doc, "overrides"),
            seed=r.opt(doc, "seed", int),
            profile=r.opt(doc, "profile", str),
            stack=None if stack is None else _stack(r, r.object(stack, "stack")),
            backend=r.opt(doc, "backend", str),
            duration_ns=r.opt(doc, "duration_ns", int),
            time_scale=None if (t := r.opt(doc, "time_scale", (int, float))) is None else float(t),
            load=None if doc.get("load") is None else r.object(doc["load"], "load"),
            timeline=r.objects(doc, "timeline"),
            invariants=None if doc.get("invariants") is None else _uses(r, doc["invariants"]),
            sometimes=r.objects(doc, "sometimes"),
            expect={
                str(k): r.object(v, f"expect.{k}")
                for k, v in r.object(doc.get("expect") or {}, "expect").items()
            },
        )


def _stack(r: _Reader, doc: JsonObject) -> StackUse:
    return StackUse(
        ref=r.opt(doc, "ref", str, "stack."),
        name=r.opt(doc, "name", str, "stack."),
        path=r.opt(doc, "path", str, "stack."),
        profile=r.opt(doc, "profile", str, "stack."),
        switches=r.object(doc.get("switches") or {}, "stack.switches"),
        settings=r.object(doc.get("settings") or {}, "stack.settings"),
    )


def _uses(r: _Reader, value: JsonValue) -> list[CheckerUse]:
    if not isinstance(value, list):
        raise r.error("invariants", "expected a list of {name, params}")
    out: list[CheckerUse] = []
    for i, use in enumerate(value):
        if not isinstance(use, Mapping) or not isinstance(use.get("name"), str):
            raise r.error(f"invariants[{i}]", f"expected {{name, params}}, got {use!r}")
        out.append(CheckerUse(str(use["name"]), use.get("params")))
    return out


class _Reader:
    """Shape checks with one message each: the file, the field, what was expected."""

    def __init__(self, file: Path | str) -> None:
        self.file = file

    def error(self, where: str | None, problem: str) -> UsageError:
        return UsageError(problem, file=self.file, field=where)

    def object(self, value: Any, where: str | None) -> JsonObject:
        if not isinstance(value, Mapping):
            raise self.error(where, f"expected an object, got {type(value).__name__}")
        return {str(k): v for k, v in value.items()}

    def opt(self, doc: JsonObject, key: str, kind: Any, prefix: str = "") -> Any:
        value = doc.get(key)
        if value is None:
            return None
        if not isinstance(value, kind) or isinstance(value, bool):
            raise self.error(f"{prefix}{key}", f"expected {_kind_name(kind)}, got {value!r}")
        return value

    def strings(self, doc: JsonObject, key: str) -> list[str]:
        value = doc.get(key) or []
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            raise self.error(key, f"expected a list of strings, got {value!r}")
        return [str(s) for s in value]

    def objects(self, doc: JsonObject, key: str) -> list[JsonObject]:
        value = doc.get(key) or []
        if not isinstance(value, list):
            raise self.error(key, f"expected a list, got {type(value).__name__}")
        return [self.object(v, f"{key}[{i}]") for i, v in enumerate(value)]


def _kind_name(kind: Any) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "a string", int: "an integer", float: "a number"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)
