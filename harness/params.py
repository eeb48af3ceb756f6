"""Typed parameters of faults, invariants and load personas.

A component declares its parameters as a model: a class decorated with `@params` (a
frozen, keyword-only dataclass) whose fields come from `param` (with a default) or
`required`, each with its help text and limits:

    @params
    class LatencyParams:
        latency: Duration = param(Duration.of(ms=500), "delay added to each chunk", min=Duration(0))
        stream: Literal["upstream", "downstream", "both"] = param("downstream", "direction")
        toxicity: Ratio = param(1.0, "share of connections the toxic applies to")

The field's type says what a scenario may write:

| type | in YAML |
|---|---|
| `Duration` | ``500ms``, ``30s`` (a bare number is refused) |
| `int`, `float`, `Ratio` (a float in [0, 1]) | a number |
| `bool`, `str` | true or false, a string |
| `Literal["a", "b"]` | one of the strings |
| `tuple[str, ...]` | a list of strings (one string is a list of one) |
| `tuple[int, int]`, `tuple[float, float]`, `tuple[Duration, Duration]` | a pair [low, high] |
| `Mapping[str, float]` | a mapping of names to numbers |
| `Mapping[str, JsonValue]` | any mapping |
| `Sequence[Mapping[str, object]]` | a list of mappings, kept as loaded (for nested validation) |
| `X \\| None` | X, or null |

From the model come validation (`bind`: a scenario's mapping to an instance; every
problem one `ScenarioError` naming file, line, field path and what is allowed), the
catalogue (`rows`), the record (`to_json` / `from_json`, durations as nanoseconds) and
a JSON schema (`json_schema`). `schedule=True` marks a duration that is part of the
schedule (a downtime, an interval): `scaled` shrinks it with the scenario's time_scale;
magnitudes (a latency, an RTO) do not scale.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeAlias, TypeVar, Union, dataclass_transform

from .durations import ALLOWED as DURATION_ALLOWED
from .durations import SCHEMA_PATTERN as DURATION_PATTERN
from .durations import Duration, parse_duration
from .errors import ScenarioError
from .yamlsrc import LocDict, line_of

__all__ = [
    "REQUIRED",
    "Duration",
    "Field",
    "JsonValue",
    "ModelError",
    "NoParams",
    "Param",
    "ParamKind",
    "Ratio",
    "Where",
    "bind",
    "bind_params",
    "declared_model",
    "fields_of",
    "from_json",
    "json_schema",
    "param",
    "params",
    "required",
    "rows",
    "scaled",
    "to_json",
]

T = TypeVar("T")

JsonValue: TypeAlias = (
    "bool | int | float | str | Sequence[JsonValue] | Mapping[str, JsonValue] | None"
)


class _RatioMark:
    """Marks a float that must lie in [0, 1]."""


Ratio: TypeAlias = Annotated[float, _RatioMark()]

_META = "l2chaos.param"
Bound = float | Duration


@dataclass(frozen=True)
class _Meta:
    help: str
    min: Bound | None
    max: Bound | None
    schedule: bool
    key: str | None  # the name in YAML when it is no Python name (`in`)


def param(
    default: T,
    help: str,
    *,
    min: Bound | None = None,
    max: Bound | None = None,
    schedule: bool = False,
    key: str | None = None,
) -> T:
    """A parameter with a default. `schedule`: a duration that shrinks with time_scale;
    `key`: its name in YAML when that is a Python keyword (``in_ = param(..., key="in")``)."""
    meta = {_META: _Meta(help, min, max, schedule, key)}
    if type(default).__hash__ is None:  # a dict or list default: each instance gets a copy
        factory = _copier(default)
        return typing.cast("T", dataclasses.field(default_factory=factory, metadata=meta))
    return dataclasses.field(default=default, metadata=meta)


def _copier(value: object) -> Callable[[], object]:
    if isinstance(value, Mapping):
        return lambda: types.MappingProxyType(dict(value))
    return lambda: type(value)(value)  # type: ignore[call-arg]


def required(
    help: str,
    *,
    min: Bound | None = None,
    max: Bound | None = None,
    schedule: bool = False,
    key: str | None = None,
) -> Any:
    """A parameter without a default: a scenario must give it."""
    return dataclasses.field(metadata={_META: _Meta(help, min, max, schedule, key)})


@dataclass_transform(frozen_default=True, kw_only_default=True)
def params(cls: type[T]) -> type[T]:
    """Make `cls` a parameter model: a frozen, keyword-only dataclass."""
    return dataclasses.dataclass(frozen=True, kw_only=True)(cls)


@params
class NoParams:
    """The model of a component that takes no parameters."""


class ModelError(TypeError):
    """A parameter model a plug-in author got wrong (found at registration)."""


# ------------------------------------------------------------------------ kinds


class _Bad(Exception):
    """A value that is not allowed; `problem` replaces 'expected <allowed>, got <value>'."""

    def __init__(self, problem: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem


class Kind(ABC):
    """What one parameter type accepts, and how it is recorded, shown and described."""

    words: str
    timed = False  # bounds are durations

    @abstractmethod
    def check(self, value: object) -> object:
        """A value from YAML → the typed value; raise _Bad."""

    def load(self, value: object) -> object:
        """A value from the JSON record → the typed value; raise _Bad."""
        return self.check(value)

    def dump(self, value: object) -> JsonValue:
        return typing.cast("JsonValue", value)

    def show(self, value: object) -> str:
        """The value as a user would write it in YAML."""
        return repr(value) if isinstance(value, str) else str(value)

    def numbers(self, value: object) -> list[float]:
        """What min/max apply to."""
        return []

    @abstractmethod
    def schema(self) -> dict[str, JsonValue]: ...


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _DurationKind(Kind):
    words = DURATION_ALLOWED
    timed = True

    def check(self, value: object) -> Duration:
        if not isinstance(value, str):
            raise _Bad
        try:
            return Duration(parse_duration(value))
        except ValueError:
            raise _Bad from None

    def load(self, value: object) -> Duration:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Bad("expected nanoseconds (an integer)")
        return Duration(value)

    def dump(self, value: object) -> JsonValue:
        return typing.cast("Duration", value).ns

    def show(self, value: object) -> str:
        return str(value)

    def numbers(self, value: object) -> list[float]:
        return [typing.cast("Duration", value).ns]

    def schema(self) -> dict[str, JsonValue]:
        return {"type": "string", "pattern": DURATION_PATTERN}


class _ScalarKind(Kind):
    """A value of one JSON type (`accepts` in Python)."""

    def __init__(self, words: str, json_type: str, accepts: type) -> None:
        self.words = words
        self.json_type = json_type
        self.accepts = accepts

    def check(self, value: object) -> object:
        # a bool is an int to Python, never to a scenario
        if isinstance(value, bool) is not (self.accepts is bool) or not isinstance(
            value, self.accepts
        ):
            raise _Bad
        return value

    def show(self, value: object) -> str:
        if self.accepts is bool:
            return "true" if value else "false"
        return super().show(value)

    def numbers(self, value: object) -> list[float]:
        return [typing.cast("float", value)] if self.accepts in (int, float) else []

    def schema(self) -> dict[str, JsonValue]:
        return {"type": self.json_type}


class _FloatKind(_ScalarKind):
    def __init__(self) -> None:
        super().__init__("a number", "number", float)

    def check(self, value: object) -> float:
        if not _number(value) or not math.isfinite(typing.cast("float", value)):
            raise _Bad
        return float(typing.cast("float", value))


class _RatioKind(_FloatKind):
    def __init__(self) -> None:
        super().__init__()
        self.words = "a number between 0 and 1"

    def check(self, value: object) -> float:
        out = super().check(value)
        if not 0.0 <= out <= 1.0:
            raise _Bad
        return out

    def schema(self) -> dict[str, JsonValue]:
        return {"type": "number", "minimum": 0, "maximum": 1}


class _EnumKind(Kind):
    def __init__(self, choices: tuple[str, ...]) -> None:
        self.choices = choices
        self.words = "one of " + ", ".join(choices)

    def check(self, value: object) -> str:
        if not isinstance(value, str) or value not in self.choices:
            raise _Bad
        return value

    def schema(self) -> dict[str, JsonValue]:
        return {"enum": list(self.choices)}


class _StrListKind(Kind):
    words = "a list of strings"

    def check(self, value: object) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, Sequence) or not all(isinstance(v, str) for v in items):
            raise _Bad
        return tuple(items)

    def dump(self, value: object) -> JsonValue:
        return list(typing.cast("tuple[str, ...]", value))

    def show(self, value: object) -> str:
        return "[" + ", ".join(typing.cast("tuple[str, ...]", value)) + "]"

    def schema(self) -> dict[str, JsonValue]:
        items: dict[str, JsonValue] = {"type": "string"}
        return {"anyOf": [items, {"type": "array", "items": items}]}


class _PairKind(Kind):
    """[low, high] of one scalar kind, low <= high."""

    def __init__(self, item: Kind, words: str) -> None:
        self.item = item
        self.words = words
        self.timed = item.timed

    def _pair(self, value: object, convert: Callable[[object], object]) -> tuple[object, object]:
        if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != 2:
            raise _Bad
        lo, hi = convert(value[0]), convert(value[1])
        if self.item.numbers(lo)[0] > self.item.numbers(hi)[0]:
            raise _Bad
        return lo, hi

    def check(self, value: object) -> tuple[object, object]:
        return self._pair(value, self._item(self.item.check))

    def load(self, value: object) -> tuple[object, object]:
        return self._pair(value, self._item(self.item.load))

    @staticmethod
    def _item(convert: Callable[[object], object]) -> Callable[[object], object]:
        def one(v: object) -> object:
            try:
                return convert(v)
            except _Bad:
                raise _Bad from None  # the whole pair is named in the message

        return one

    def dump(self, value: object) -> JsonValue:
        return [self.item.dump(v) for v in typing.cast("tuple[object, object]", value)]

    def show(self, value: object) -> str:
        return "[" + ", ".join(self.item.show(v) for v in typing.cast("tuple[object]", value)) + "]"

    def numbers(self, value: object) -> list[float]:
        return [
            n for v in typing.cast("tuple[object, object]", value) for n in self.item.numbers(v)
        ]

    def schema(self) -> dict[str, JsonValue]:
        return {"type": "array", "items": self.item.schema(), "minItems": 2, "maxItems": 2}


class _NumberMapKind(Kind):
    words = "a mapping of names to numbers"

    def check(self, value: object) -> Mapping[str, float]:
        if not isinstance(value, Mapping):
            raise _Bad
        for k, v in value.items():
            if not _number(v) or not math.isfinite(v):
                raise _Bad(f"expected a number for {k!r}, got {v!r}")
        return types.MappingProxyType({str(k): float(v) for k, v in value.items()})

    def dump(self, value: object) -> JsonValue:
        return dict(typing.cast("Mapping[str, float]", value))

    def show(self, value: object) -> str:
        items = typing.cast("Mapping[str, float]", value).items()
        return "{" + ", ".join(f"{k}: {v:g}" for k, v in items) + "}"

    def schema(self) -> dict[str, JsonValue]:
        return {"type": "object", "additionalProperties": {"type": "number"}}


class _MappingKind(Kind):
    words = "a mapping"

    def check(self, value: object) -> Mapping[str, object]:
        if not isinstance(value, Mapping):
            raise _Bad
        return types.MappingProxyType(dict(value))

    def dump(self, value: object) -> JsonValue:
        return _plain(value)

    def show(self, value: object) -> str:
        return str(_plain(value))

    def schema(self) -> dict[str, JsonValue]:
        return {"type": "object"}


class _MappingListKind(Kind):
    words = "a list of mappings"

    def check(self, value: object) -> Sequence[object]:
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise _Bad
        if not all(isinstance(v, Mapping) for v in value):
            raise _Bad
        return value  # kept as loaded, with the line numbers of its items

    def dump(self, value: object) -> JsonValue:
        return _plain(value)

    def schema(self) -> dict[str, JsonValue]:
        return {"type": "array", "items": {"type": "object"}}


class _OptionalKind(Kind):
    def __init__(self, inner: Kind) -> None:
        self.inner = inner
        self.words = inner.words
        self.timed = inner.timed

    def check(self, value: object) -> object:
        return None if value is None else self.inner.check(value)

    def load(self, value: object) -> object:
        return None if value is None else self.inner.load(value)

    def dump(self, value: object) -> JsonValue:
        return None if value is None else self.inner.dump(value)

    def show(self, value: object) -> str:
        return "null" if value is None else self.inner.show(value)

    def numbers(self, value: object) -> list[float]:
        return [] if value is None else self.inner.numbers(value)

    def schema(self) -> dict[str, JsonValue]:
        return {"anyOf": [self.inner.schema(), {"type": "null"}]}


def _plain(v: object) -> JsonValue:
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, Duration):
        return v.ns
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    return str(v)


_SCALARS: dict[object, Kind] = {
    Duration: _DurationKind(),
    bool: _ScalarKind("true or false", "boolean", bool),
    int: _ScalarKind("an integer", "integer", int),
    float: _FloatKind(),
    str: _ScalarKind("a string", "string", str),
}


def _kind(tp: object) -> Kind:
    """The kind of a field's resolved type; ModelError for a type no kind supports."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp in _SCALARS:
        return _SCALARS[tp]
    if origin is Annotated and args[0] is float and any(isinstance(a, _RatioMark) for a in args):
        return _RatioKind()
    if origin is Literal and args and all(isinstance(a, str) for a in args):
        return _EnumKind(typing.cast("tuple[str, ...]", args))
    if origin in (Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return _OptionalKind(_kind(rest[0]))
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis and args[0] is str:
        return _StrListKind()
    if origin is Sequence and args and typing.get_origin(args[0]) is Mapping:
        return _MappingListKind()
    if origin is tuple and len(args) == 2 and args[0] == args[1]:
        words = {
            int: "a pair [low, high] of whole numbers",
            float: "a pair [low, high] of numbers",
            Duration: "a pair [low, high] of durations such as [2s, 8s]",
        }
        if args[0] in words:
            return _PairKind(_SCALARS[args[0]], words[args[0]])
    if origin in (Mapping, dict) and args and args[0] is str:
        return _NumberMapKind() if args[1] in (int, float) else _MappingKind()
    raise ModelError(f"unsupported parameter type {tp!r} (see l2chaos.params for the types)")


# ------------------------------------------------------------------------ fields


@dataclass(frozen=True)
class Field:
    """One declared parameter, resolved: its kind, default and limits. `name` is how a
    scenario writes it, `attr` the model's attribute (they differ only for a keyword)."""

    name: str
    kind: Kind
    default: object  # dataclasses.MISSING when required
    help: str
    min: Bound | None
    max: Bound | None
    schedule: bool
    attr: str

    @property
    def required(self) -> bool:
        return self.default is dataclasses.MISSING

    def allowed(self) -> str:
        """What values are allowed, in words, for error messages and docs."""
        bounds = []
        for op, b in ((">=", self.min), ("<=", self.max)):
            if b is not None:
                shown = str(b) if isinstance(b, Duration) else f"{b:g}"
                bounds.append(f"{op} {shown}")
        words = self.kind.words + (f" ({', '.join(bounds)})" if bounds else "")
        return words + (", or null" if isinstance(self.kind, _OptionalKind) else "")

    def default_text(self) -> str:
        """The default as a user would write it in YAML."""
        return "required" if self.required else self.kind.show(self.default)

    def validate(self, value: object) -> object:
        """YAML value → typed value, with bounds; raise _Bad."""
        return self._bounded(self.kind.check(value))

    def _bounded(self, out: object) -> object:
        if isinstance(out, Duration) and out.ns <= 0 and (self.min is None or _num(self.min) > 0):
            raise _Bad("must be a positive duration, got {value!r}")
        for v in self.kind.numbers(out):
            if (self.min is not None and v < _num(self.min)) or (
                self.max is not None and v > _num(self.max)
            ):
                raise _Bad
        return out


def _num(b: Bound) -> float:
    return b.ns if isinstance(b, Duration) else b


_FIELDS: dict[type[object], tuple[Field, ...]] = {}


def fields_of(model: type[object]) -> tuple[Field, ...]:
    """The declared parameters of a model, in order. ModelError names what is wrong."""
    if model not in _FIELDS:
        _FIELDS[model] = _resolve(model)
    return _FIELDS[model]


def _resolve(model: type[object]) -> tuple[Field, ...]:
    if not dataclasses.is_dataclass(model) or not model.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        raise ModelError(
            f"{model.__qualname__} is not a parameter model (decorate it with @params)"
        )
    try:
        # JsonValue is a recursive alias written as a string: its names resolve here.
        names = {"JsonValue": JsonValue, "Mapping": Mapping, "Sequence": Sequence}
        hints = typing.get_type_hints(model, localns=names, include_extras=True)
    except Exception as exc:  # a name the annotation uses is not importable at run time
        raise ModelError(f"{model.__qualname__}: cannot resolve its annotations: {exc}") from exc
    out = []
    for f in sorted(dataclasses.fields(model), key=_declared_order(model)):
        meta = f.metadata.get(_META)
        if not isinstance(meta, _Meta):
            raise ModelError(
                f"{model.__qualname__}.{f.name}: declare it with param(default, help) or required(help)"
            )
        try:
            kind = _kind(hints[f.name])
        except ModelError as exc:
            raise ModelError(f"{model.__qualname__}.{f.name}: {exc}") from None
        default: object = f.default
        if f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        name = meta.key or f.name
        field = Field(name, kind, default, meta.help, meta.min, meta.max, meta.schedule, f.name)
        if meta.schedule and not kind.timed:
            raise ModelError(f"{model.__qualname__}.{f.name}: schedule=True needs a duration type")
        if not field.required:
            try:
                field.validate(_yaml_spelling(kind, default))
            except _Bad as bad:
                raise ModelError(
                    f"{model.__qualname__}.{f.name}: its default {field.default_text()} is not "
                    f"{field.allowed()}{': ' + bad.problem if bad.problem else ''}"
                ) from None
        out.append(field)
    return tuple(out)


def _declared_order(model: type[object]) -> Callable[[dataclasses.Field[Any]], int]:
    """Most derived first: a model's own parameters before those of the model it extends
    (``latency`` before the ``stream`` every toxic takes)."""
    names: list[str] = []
    for klass in model.__mro__:
        for name in inspect.get_annotations(klass):
            if name not in names:
                names.append(name)
    return lambda f: names.index(f.name)


def _yaml_spelling(kind: Kind, value: object) -> object:
    """A default as it would come from YAML, so defaults pass the same checks as input."""
    if isinstance(value, Duration):
        return str(value)
    if isinstance(value, tuple) and kind.timed:
        return [str(v) for v in value]
    return value


def declared_model(cls: type[object], base: type[object]) -> type[object]:
    """The model a plug-in class names as `base[Model]` (directly or through a parent
    such as ``ToxicFault[LatencyParams]``); NoParams when it names none."""
    for klass in cls.__mro__:
        for orig in klass.__dict__.get("__orig_bases__", ()):
            origin = typing.get_origin(orig)
            if not (isinstance(origin, type) and issubclass(origin, base)):
                continue
            for arg in typing.get_args(orig):
                if isinstance(arg, type) and dataclasses.is_dataclass(arg):
                    return arg
    return NoParams


# ------------------------------------------------------------------------ binding


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


def _read(
    fields: Sequence[Field],
    given: object,
    where: Where,
    convert: Callable[[Field, object], object],
) -> dict[str, object]:
    """The given values, converted; unknown and missing names are errors."""
    given = given if given is not None else LocDict()
    if not isinstance(given, Mapping):
        raise where.error(f"expected a mapping of parameters, got {given!r}")
    names = [f.name for f in fields]
    for key in given:
        if key not in names:
            allowed = ", ".join(sorted(names)) or "none (this takes no parameters)"
            raise where.child(key).error(
                f"unknown parameter {key!r}; allowed: {allowed}", given, key
            )
    values: dict[str, object] = {}
    for f in fields:
        if f.name in given:
            raw = given[f.name]
            try:
                values[f.attr] = convert(f, raw)
            except _Bad as bad:
                problem = bad.problem or "expected {allowed}, got {value!r}"
                raise where.child(f.name).error(
                    problem.format(allowed=f.allowed(), value=raw), given, f.name
                ) from None
        elif f.required:
            raise where.error(f"missing required parameter {f.name!r} ({f.allowed()})", given)
    return values


def bind(model: type[T], given: object, where: Where) -> T:
    """Validate a scenario's mapping (None: all defaults) against `model`."""
    return model(**_read(fields_of(model), given, where, Field.validate))


def from_json(model: type[T], data: object, where: Where) -> T:
    """Read parameters back from a run record (`to_json`'s output)."""
    return model(**_read(fields_of(model), data, where, lambda f, v: f._bounded(f.kind.load(v))))


def to_json(obj: object) -> dict[str, JsonValue]:
    """Parameters as the record keeps them: durations in nanoseconds, lists for tuples."""
    return {f.name: f.kind.dump(getattr(obj, f.attr)) for f in fields_of(type(obj))}


def scaled(obj: T, factor: float) -> T:
    """The parameters with every `schedule` duration multiplied by `factor`."""
    changes: dict[str, object] = {}
    for f in fields_of(type(obj)):
        value = getattr(obj, f.attr)
        if f.schedule and value is not None and factor != 1.0:
            if isinstance(value, Duration):
                changes[f.attr] = value * factor
            else:
                changes[f.attr] = tuple(v * factor for v in value)
    return dataclasses.replace(obj, **changes) if changes else obj  # type: ignore[type-var]


# ------------------------------------------------------------------------ documentation


def rows(model: type[object] | Iterable[Param]) -> list[tuple[str, str, str, str]]:
    """(name, allowed, default, help) per parameter of a model (or of a tuple of load
    `Param`s), for `l2chaos list` and the docs."""
    fields = fields_of(model) if isinstance(model, type) else [p.as_field() for p in model]
    out = []
    for f in fields:
        help_ = f.help + (" (shrinks with time_scale)" if f.schedule else "")
        out.append((f.name, f.allowed(), f.default_text(), help_))
    return out


def json_schema(model: type[object]) -> dict[str, JsonValue]:
    """A JSON schema (draft 2020-12) of the mapping `bind` accepts."""
    props: dict[str, JsonValue] = {}
    for f in fields_of(model):
        s = f.kind.schema()
        target = s.get("items") if s.get("type") == "array" else s
        for key, b in (("minimum", f.min), ("maximum", f.max)):
            if isinstance(b, (int, float)) and isinstance(target, dict):
                target[key] = b
        s["description"] = f.help + (f" Allowed: {f.allowed()}." if f.kind.timed else "")
        if not f.required:
            s["default"] = f.kind.dump(f.default) if not f.kind.timed else f.default_text()
        props[f.name] = s
    return {
        "type": "object",
        "properties": props,
        "required": [f.name for f in fields_of(model) if f.required],
        "additionalProperties": False,
    }


# ------------------------------------------------------------------------ the load section
# The load section (harness/load/plan.py) still declares its keys as tuples of `Param`,
# checked by the same kinds as the models above and returned as plain values
# (durations in nanoseconds, pairs and lists as lists), until it gets models too.

ParamKind = Literal[
    "duration", "duration_range", "int", "float", "ratio", "str", "bool", "enum",
    "str_list", "range", "mapping", "mapping_list",
]  # fmt: skip


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Param:
    """One key of the load section: name, kind, default (or REQUIRED), help, limits."""

    name: str
    kind: ParamKind
    default: Any = REQUIRED
    help: str = ""
    choices: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    schedule: bool = False

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def as_field(self) -> Field:
        duration = _SCALARS[Duration]
        kind: Kind = {
            "duration": lambda: duration,
            "duration_range": lambda: _PairKind(
                duration, "a pair [low, high] of durations such as [2s, 8s]"
            ),
            "int": lambda: _SCALARS[int],
            "float": lambda: _SCALARS[float],
            "ratio": _RatioKind,
            "str": lambda: _SCALARS[str],
            "bool": lambda: _SCALARS[bool],
            "enum": lambda: _EnumKind(self.choices),
            "str_list": _StrListKind,
            "range": lambda: _PairKind(_SCALARS[float], "a pair [low, high] of numbers"),
            "mapping": _MappingKind,
            "mapping_list": _MappingListKind,
        }[self.kind]()
        timed = self.kind in ("duration", "duration_range")
        lo = Duration(int(self.min)) if timed and self.min is not None else self.min
        hi = Duration(int(self.max)) if timed and self.max is not None else self.max
        default: object = dataclasses.MISSING if self.required else self.default
        if self.kind == "duration" and isinstance(default, int):
            default = Duration(default)  # the catalogue shows it as a duration
        elif self.kind == "duration_range" and isinstance(default, (tuple, list)):
            default = tuple(Duration(int(d)) for d in default)
        return Field(self.name, kind, default, self.help, lo, hi, self.schedule, self.name)


def bind_params(
    specs: Sequence[Param], given: Mapping[str, Any] | None, where: Where
) -> dict[str, Any]:
    """Validate `given` against `specs`; every parameter with defaults filled in."""

    def plain(f: Field, raw: object) -> object:
        typed = f.validate(raw)
        if kinds[f.name] == "range":
            return list(typing.cast("Sequence[object]", raw))  # the numbers as written
        if kinds[f.name] == "mapping_list":
            return typed
        out = _plain(typed)
        return dict(out) if isinstance(out, Mapping) else out

    kinds = {p.name: p.kind for p in specs}
    values = _read([p.as_field() for p in specs], given, where, plain)
    return {p.name: values.get(p.name, p.default) for p in specs}
