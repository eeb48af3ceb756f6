"""A record's fields as a JSON object, in declaration order, without spelling each one
out again (for records whose wire names are their field names: the harness's observed
events, the reference stack's orders, markets and blocks)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["fields_json"]


def fields_json(
    record: DataclassInstance,
    *,
    omit: Collection[str] = (),
    rename: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """{field name (or its new name in `rename`): value} for every field not in `omit`.
    Values are taken as they are (unlike `dataclasses.asdict`, nothing is copied)."""
    names = rename or {}
    return {
        names.get(f.name, f.name): getattr(record, f.name)
        for f in fields(record)
        if f.name not in omit
    }
