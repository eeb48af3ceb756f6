"""Free-form JSON in the run record: a violation's evidence, a verdict's details, a
fault's details, an event's payload. Records with a known shape are typed (the other
modules of this package); these are the values whose shape belongs to whoever wrote
them. Writers build them from plain values; readers narrow with `isinstance` or with
the helpers here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from l2chaos.params import JsonValue

__all__ = ["JsonObject", "JsonValue", "as_list", "as_object"]

# A JSON object as written: its values are any JSON (nested objects and arrays are
# read-only `Mapping`/`Sequence`, so a `dict[str, int]` or a `list[str]` fits as is).
JsonObject = dict[str, JsonValue]


def as_object(v: JsonValue) -> Mapping[str, JsonValue]:
    """`v` when it is a JSON object, else an empty one."""
    return v if isinstance(v, Mapping) else {}


def as_list(v: JsonValue) -> Sequence[JsonValue]:
    """`v` when it is a JSON array (a string is not one), else an empty one."""
    return v if isinstance(v, Sequence) and not isinstance(v, str) else ()
