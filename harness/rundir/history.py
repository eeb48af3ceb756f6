"""history.jsonl as the checkers read it: one `HistoryLine` per invoke or completion
(docs/architecture.md, "history.jsonl"). The load generator writes the lines
(l2chaos.load.history); this is their reader.

Only the fields the checkers use are decoded (msgspec skips the rest of a line
without building it): a 1M-operation history is two million lines. A completion's
`result` stays undecoded until a checker asks for the ids of an acknowledged write
(`write_ids`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec

from .jsonl import read_typed

__all__ = ["HISTORY", "HistoryLine", "WriteIds", "read_history", "write_ids"]

HISTORY = "history.jsonl"
_NULL = msgspec.Raw(b"null")


class WriteIds(msgspec.Struct, frozen=True, gc=False):
    """What joins an acknowledged write to the stack's record (fields of its `result`)."""

    tx_hash: str | None = None
    nonce: int | str | None = None
    order_id: int | str | None = None
    block: int | str | None = None
    block_hash: str | None = None


class HistoryLine(msgspec.Struct, gc=False):
    """`type` is invoke, ok, fail or info; `write: true` marks an op kind as a write."""

    type: str | None = None
    op_id: str | int | None = None
    op: str | None = None
    t_ns: int | None = None
    latency_ms: float | None = None
    write: bool | None = None
    account: int | str | None = None
    process: str | int | None = None
    result: msgspec.Raw = _NULL


_NO_IDS = WriteIds()
_decode_ids = msgspec.json.Decoder(WriteIds).decode


def write_ids(line: HistoryLine) -> WriteIds:
    """The ids in a completion's `result` (none when it is not an object)."""
    raw = line.result
    if memoryview(raw)[0] != 0x7B:  # not an object ({)
        return _NO_IDS
    return _decode_ids(raw)


def read_history(path: Path) -> Iterator[HistoryLine]:
    return read_typed(path, HistoryLine)
