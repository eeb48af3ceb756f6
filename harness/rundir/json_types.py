"""Free-form JSON in the run record: a violation's evidence, a verdict's details, a
fault's details, an event's payload. Records with a known shape are typed (the other
modules of this package); these are the values whose shape belongs to whoever wrote
them. Writers build them from plain values; readers narrow with `isinstance` or with
the helpers here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING

from l2chaos.params import JsonValue

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = [
    "JsonObject",
    "JsonValue",
    "as_list",
    "as_object",
    "fields_json",
    "json_object",
    "json_value",
]

# A JSON object as written: its values are any JSON (nested objects and arrays are
# read-only `Mapping`/`Sequence`, so a `dict[str, int]` or a `list[str]` fits as is).
JsonObject = dict[str, JsonValue]


def as_object(v: JsonValue) -> Mapping[str, JsonValue]:
    """`v` when it is a JSON object, else an empty one."""
    return v if isinstance(v, Mapping) else {}


def as_list(v: JsonValue) -> Sequence[JsonValue]:
    """`v` when it is a JSON array (a string is not one), else an empty one."""
    return v if isinstance(v, Sequence) and not isinstance(v, str) else ()


def json_value(v: object) -> JsonValue:
    """`v` as JSON: scalars as they are, mappings and lists converted, anything else as
    its text (what the run directory's writers write for it)."""
    if v is None or isinstance(v, (str, int, float)):
        return v
    if isinstance(v, Mapping):
        return json_object(v)
    if isinstance(v, (list, tuple)):
        return [json_value(x) for x in v]
    return str(v)


def fields_json(record: DataclassInstance, leave_out: Collection[str] = ()) -> JsonObject:
    """A dataclass whose fields hold JSON already, as the JSON object of its fields in
    their order (not copied), without those in `leave_out` (each writer adds those its
    own way)."""
    return {
        f.name: getattr(record, f.name)
        for f in dataclasses.fields(record)
        if f.name not in leave_out
    }


def json_object(v: Mapping[str, object]) -> JsonObject:
    """A mapping as a JSON object."""
    return {str(k): json_value(x) for k, x in v.items()}
