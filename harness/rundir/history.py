"""history.jsonl: its writer (the merge of the worker logs), its reader and its check
(docs/architecture.md, "history.jsonl"). One `HistoryLine` per invoke or completion.

`merge_histories` turns the worker logs (`worker_log.py`) into records and merges them
in `t_ns` order into run_dir/history.jsonl in one streaming pass (a k-way merge: memory
is bounded by the operations in flight, not the length of the run), closing operations
a killed worker left open with a synthetic `info`. `check_history` verifies a merged
file is well formed. `read_history` is what the checkers read.

Only the fields the checkers use are decoded (msgspec skips the rest of a line
without building it): a 1M-operation history is two million lines. A completion's
`result` stays undecoded until a checker asks for the ids of an acknowledged write
(`write_ids`).
"""

from __future__ import annotations

import heapq
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from .jsonl import read_typed
from .operations import COMPLETIONS, WRITE_OPS, write_id
from .worker_log import MergeStats, records

__all__ = [
    "HISTORY",
    "HistoryCheck",
    "HistoryLine",
    "MergeStats",
    "WriteIds",
    "check_history",
    "merge_histories",
    "read_history",
    "write_ids",
]

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


def merge_histories(
    inputs: Sequence[Path], out: Path, *, end_t_ns: int | None = None
) -> MergeStats:
    """Merge per-worker history files into `out` in `t_ns` order (streaming k-way merge).

    Each input keeps its own order (an invoke always precedes its completion). An
    invoke that has no completion when its file ends (the worker was killed) is closed
    with an `info` record marked `"synthetic": true` at `end_t_ns` (or the last time
    seen), so every invoke in the result has exactly one completion. Written to a
    temporary file and renamed, so `out` is either complete or absent.
    """
    stats = MergeStats(files=len(inputs))
    open_ops: dict[str, str] = {}
    last_t = 0
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", buffering=1 << 20) as w:
        streams = [records(p, stats) for p in inputs]
        for rec in heapq.merge(*streams, key=lambda r: r.t_ns):
            if rec.type == "invoke":
                if rec.op_id in open_ops:
                    stats.bad_lines += 1
                    continue
                open_ops[rec.op_id] = rec.line
                stats.operations += 1
            elif rec.type in COMPLETIONS:
                if open_ops.pop(rec.op_id, None) is None:
                    stats.bad_lines += 1  # a completion without its invoke
                    continue
                stats.by_type[rec.type] += 1
            else:
                stats.bad_lines += 1
                continue
            w.write(rec.line)
            stats.records += 1
            last_t = max(last_t, rec.t_ns)
        t_end = max(last_t, end_t_ns or 0)
        for line in open_ops.values():
            inv = json.loads(line)
            closing = {
                "t_ns": t_end,
                "mono_ns": None,
                "type": "info",
                "op_id": inv["op_id"],
                "process": inv.get("process"),
                "worker": inv.get("worker"),
                "persona": inv.get("persona"),
                "account": inv.get("account"),
                "op": inv.get("op"),
                "result": None,
                "error": "no completion recorded: the worker stopped before the operation ended",
                "latency_ms": None,
                "synthetic": True,
            }
            w.write(json.dumps(closing, separators=(",", ":")) + "\n")
            stats.records += 1
            stats.closed_at_end += 1
            stats.by_type["info"] += 1
    os.replace(tmp, out)
    return stats


@dataclass
class HistoryCheck:
    """Result of `check_history`: counts and the problems found (the first 50 kept)."""

    records: int = 0
    operations: int = 0
    by_type: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("ok", "fail", "info"), 0)
    )
    by_op: dict[str, dict[str, int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < 50:
            self.problems.append(text)


_INVOKE_FIELDS = (
    "t_ns",
    "mono_ns",
    "op_id",
    "process",
    "worker",
    "persona",
    "account",
    "op",
    "args",
)
_DONE_FIELDS = ("t_ns", "op_id", "process", "worker", "op", "result", "error")


def check_history(path: Path) -> HistoryCheck:
    """Verify a merged history: every line a record; `t_ns` never decreases; every
    invoke has exactly one later completion of the same process and op; a process has
    one operation in flight at a time and is never reused after `info`; every `ok`
    write carries an id (tx_hash, order_id or nonce). Streams the file."""
    chk = HistoryCheck()
    open_ops: dict[str, dict[str, Any]] = {}
    busy: dict[str, str] = {}  # process -> op_id in flight
    retired: set[str] = set()  # processes that saw info
    seen_ids: set[str] = set()
    last_t = -1
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                rec = json.loads(line)
            except ValueError:
                chk.problem(f"line {n}: not JSON")
                continue
            chk.records += 1
            typ = rec.get("type")
            t = rec.get("t_ns")
            if not isinstance(t, int):
                chk.problem(f"line {n}: t_ns missing")
                continue
            if t < last_t:
                chk.problem(f"line {n}: t_ns {t} before the previous record's {last_t}")
            last_t = max(last_t, t)
            op_id = str(rec.get("op_id"))
            proc = rec.get("process")
            if typ == "invoke":
                missing = [k for k in _INVOKE_FIELDS if k not in rec]
                if missing:
                    chk.problem(f"line {n}: invoke without {', '.join(missing)}")
                if op_id in seen_ids:
                    chk.problem(f"line {n}: op_id {op_id} invoked twice")
                    continue
                seen_ids.add(op_id)
                if proc in retired:
                    chk.problem(f"line {n}: process {proc} reused after an info")
                if proc in busy:
                    chk.problem(f"line {n}: process {proc} already has {busy[proc]} in flight")
                busy[proc] = op_id
                open_ops[op_id] = rec
                chk.operations += 1
            elif typ in COMPLETIONS:
                missing = [k for k in _DONE_FIELDS if k not in rec]
                if missing:
                    chk.problem(f"line {n}: {typ} without {', '.join(missing)}")
                inv = open_ops.pop(op_id, None)
                if inv is None:
                    what = "completed twice" if op_id in seen_ids else "never invoked"
                    chk.problem(f"line {n}: {typ} for {op_id}, which was {what}")
                    continue
                if inv.get("process") != proc or inv.get("op") != rec.get("op"):
                    chk.problem(f"line {n}: {op_id} completed by another process or op")
                busy.pop(str(inv.get("process")), None)
                if typ == "info":
                    retired.add(proc)
                if (
                    typ == "ok"
                    and rec.get("op") in WRITE_OPS
                    and write_id(rec.get("result")) is None
                ):
                    chk.problem(
                        f"line {n}: ok {rec.get('op')} {op_id} without tx_hash/order_id/nonce"
                    )
                chk.by_type[typ] += 1
                per = chk.by_op.setdefault(
                    str(rec.get("op")), dict.fromkeys(("ok", "fail", "info"), 0)
                )
                per[typ] += 1
            else:
                chk.problem(f"line {n}: unknown type {typ!r}")
    for op_id in open_ops:
        chk.problem(f"{op_id}: invoked but never completed")
    return chk
