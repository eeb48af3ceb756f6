"""Reading a JSON-lines file of the run directory straight into typed records.

Each line is decoded by msgspec into its record type (no intermediate dict). A line
the typed decoder refuses is looked at again to say why: blank (skipped), not JSON,
not an object, or a field of the wrong type; each is a `RecordError` naming the file
and line, unless the record type's `repair` keeps what it can (the event log keeps a
malformed ledger for the checkers to report).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import msgspec
import orjson

from .errors import RecordError

__all__ = ["read_typed"]

T = TypeVar("T")


def _object(line: bytes, file: Path, lineno: int) -> dict[str, object] | None:
    """The line as a JSON object; None for a blank line; RecordError otherwise."""
    try:
        raw = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        if not line.strip():
            return None
        raise RecordError(f"invalid JSON line: {exc.msg}", file=file, line=lineno) from None
    if type(raw) is not dict:
        raise RecordError(
            f"expected a JSON object, got {type(raw).__name__}", file=file, line=lineno
        )
    return raw


def read_typed(
    path: Path,
    kind: type[T],
    contains: tuple[bytes, ...] = (),
    repair: Callable[[dict[str, object]], T] | None = None,
) -> Iterator[T]:
    """Stream `path` as `kind` records (nothing when the file is missing). With
    `contains`, lines that hold none of those byte strings are skipped undecoded."""
    if not path.is_file():
        return
    decode = msgspec.json.Decoder(kind).decode
    one = contains[0] if len(contains) == 1 else None
    with path.open("rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if one is not None:
                if one not in line:
                    continue
            elif contains and not any(c in line for c in contains):
                continue
            try:
                yield decode(line)
            except msgspec.DecodeError:
                raw = _object(line, path, lineno)
                if raw is None:
                    continue
                try:
                    yield repair(raw) if repair is not None else msgspec.convert(raw, kind)
                except msgspec.ValidationError as exc:
                    what = path.name.removesuffix(".jsonl")
                    raise RecordError(
                        f"malformed {what} line: {exc}", file=path, line=lineno
                    ) from None
