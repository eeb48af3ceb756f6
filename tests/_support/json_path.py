"""Reading free-form JSON (a verdict's details, a violation's evidence) in tests: each
step narrows, and a value of the wrong shape fails the test with its path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from l2chaos.rundir.json_types import JsonValue

__all__ = ["arr", "at", "num", "obj", "text"]


def at(v: JsonValue, *path: str | int) -> JsonValue:
    """`v[path[0]][path[1]]...`: a str steps into an object, an int into an array."""
    for i, step in enumerate(path):
        v = obj(v, path[:i])[step] if isinstance(step, str) else arr(v, path[:i])[step]
    return v


def obj(v: JsonValue, where: object = ()) -> Mapping[str, JsonValue]:
    assert isinstance(v, Mapping), f"{where}: expected an object, got {v!r}"
    return v


def arr(v: JsonValue, where: object = ()) -> Sequence[JsonValue]:
    assert isinstance(v, Sequence), f"{where}: not an array: {v!r}"
    assert not isinstance(v, str), f"{where}: not an array: {v!r}"
    return v


def num(v: JsonValue) -> float:
    assert isinstance(v, (int, float)), f"not a number: {v!r}"
    assert not isinstance(v, bool), f"not a number: {v!r}"
    return v


def text(v: JsonValue) -> str:
    assert isinstance(v, str), f"not a string: {v!r}"
    return v
