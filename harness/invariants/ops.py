"""The client history folded into compact columns, in one streaming pass.

history.jsonl holds an `invoke` and one completion (`ok`, `fail`, `info`) per
operation. Several checkers (steady state, durability) and the coverage counts need
the same facts per operation, so `ops_index(record)` reads the history once and keeps,
per completed operation, its invoke and completion times, outcome, op kind and
latency in typed arrays (a 1M-op history is about 30 MB), plus the acknowledged
writes with the ids that join them to the audit export or the chain record. A write is
one of perpdex's four write ops or any op whose records say `"write": true`. An operation whose invoke has
no completion (the run ended first) counts as `info`: its outcome is unknown.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import NamedTuple

import msgspec
from l2chaos.rundir.errors import RecordError
from l2chaos.rundir.history import HISTORY, HistoryLine, WriteIds, read_history, write_ids

from .record import RunRecord

__all__ = ["OPEN", "OUTCOMES", "WRITE_OPS", "AckedWrite", "OpsIndex", "ops_index"]

OUTCOMES = ("ok", "fail", "info")
_CODE = {"ok": 0, "fail": 1, "info": 2}
WRITE_OPS = frozenset({"place_order", "cancel_order", "deposit", "withdraw"})
# Completion time of an operation still open when the history ended.
OPEN = 2**62


class AckedWrite(NamedTuple):
    """A write the stack acknowledged (`ok`), with what joins it to the audit export.
    (A tuple: a 1M-op history holds hundreds of thousands of these.)"""

    op_id: str
    op: str
    account: int | str | None
    process: str | int | None
    invoke_t_ns: int
    t_ns: int
    tx_hash: str | None
    nonce: int | str | None
    order_id: int | str | None
    block: int | str | None
    block_hash: str | None = None


@dataclass
class OpsIndex:
    """Columns over completed operations (index i is one operation)."""

    op_names: list[str] = field(default_factory=list)
    invoke_t: array[int] = field(default_factory=lambda: array("q"))
    done_t: array[int] = field(default_factory=lambda: array("q"))
    outcome: array[int] = field(default_factory=lambda: array("b"))
    op: array[int] = field(default_factory=lambda: array("h"))
    latency_ms: array[float] = field(default_factory=lambda: array("d"))
    acked_writes: list[AckedWrite] = field(default_factory=list)
    # Operation kinds that write: perpdex's four, and any op a record marks "write": true.
    write_ops: set[str] = field(default_factory=lambda: set(WRITE_OPS))
    invokes: int = 0
    unmatched_completions: int = 0
    open_at_end: int = 0
    # Operation indexes sorted by invoke time, and those times, for range queries.
    _order: list[int] = field(default_factory=list)
    _sorted_t: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.outcome)

    def op_code(self, name: str) -> int:
        try:
            return self.op_names.index(name)
        except ValueError:
            self.op_names.append(name)
            return len(self.op_names) - 1

    def finish(self) -> None:
        order = sorted(range(len(self.invoke_t)), key=self.invoke_t.__getitem__)
        self._order = order
        self._sorted_t = [self.invoke_t[i] for i in order]

    def invoked_between(self, start_ns: int, end_ns: int) -> list[int]:
        """Indexes of operations invoked in [start, end]."""
        lo = bisect_left(self._sorted_t, start_ns)
        hi = bisect_right(self._sorted_t, end_ns)
        return self._order[lo:hi]

    def overlapping(self, start_ns: int, end_ns: int) -> list[int]:
        """Indexes of operations whose [invoke, completion] overlaps [start, end]."""
        hi = bisect_right(self._sorted_t, end_ns)
        done = self.done_t
        return [i for i in self._order[:hi] if done[i] >= start_ns]

    def write_codes(self) -> set[int]:
        return {self.op_names.index(w) for w in self.write_ops if w in self.op_names}

    def writes_attempted(self) -> int:
        """Write operations in the history, whatever their outcome."""
        codes = self.write_codes()
        return sum(1 for c in self.op if c in codes)

    def counts(self, idx: list[int] | range) -> dict[str, int]:
        """Operations by outcome (and acknowledged writes) among `idx`."""
        out = {"ops": 0, "ops_ok": 0, "ops_fail": 0, "ops_info": 0, "writes_ok": 0}
        writes = self.write_codes()
        outcome, op = self.outcome, self.op
        for i in idx:
            o = outcome[i]
            out["ops"] += 1
            out[("ops_ok", "ops_fail", "ops_info")[o]] += 1
            if o == 0 and op[i] in writes:
                out["writes_ok"] += 1
        return out


def build_ops_index(record: RunRecord) -> OpsIndex:
    # The hottest loop of a check: once per history line (millions). Columns are
    # collected in lists (a list append is cheaper than an array's) and packed at
    # the end; an acknowledged write is built positionally.
    idx = OpsIndex()
    pending: dict[str | int | None, tuple[int, str]] = {}
    codes: dict[str, int] = {}
    inv_ts: list[int] = []
    done_ts: list[int] = []
    outcomes: list[int] = []
    ops: list[int] = []
    lats: list[float] = []
    add_inv, add_done, add_out, add_op, add_lat = (
        inv_ts.append, done_ts.append, outcomes.append, ops.append, lats.append
    )  # fmt: skip
    add_write, make_write = idx.acked_writes.append, AckedWrite._make
    pop, outcome_code, writes = pending.pop, _CODE.get, idx.write_ops
    invokes = unmatched = 0
    for rec in read_history(record.path(HISTORY)):
        kind = rec.type
        t = rec.t_ns or 0
        if kind == "invoke":
            invokes += 1
            pending[rec.op_id] = (t, rec.op or "")
            if rec.write is True:
                writes.add(rec.op or "")
            continue
        code = outcome_code(kind) if kind is not None else None
        if code is None:
            continue
        started = pop(rec.op_id, None)
        latency = rec.latency_ms
        lat = latency if latency is not None else 0.0
        if started is None:
            unmatched += 1
            inv_t = t - round(lat * 1e6)
        else:
            inv_t = started[0]
            if latency is None:
                lat = (t - inv_t) / 1e6
        op_name = rec.op or (started[1] if started else "")
        oc = codes.get(op_name)
        if oc is None:
            oc = codes[op_name] = idx.op_code(op_name)
        add_inv(inv_t)
        add_done(t)
        add_out(code)
        add_op(oc)
        add_lat(lat)
        if code == 0 and op_name in writes:
            ids = _write_ids(record, rec)
            add_write(
                make_write(
                    (
                        str(rec.op_id), op_name, rec.account, rec.process, inv_t, t,
                        ids.tx_hash, ids.nonce, ids.order_id, ids.block, ids.block_hash,
                    )
                )
            )  # fmt: skip
    idx.invokes = invokes
    idx.unmatched_completions = unmatched
    # Invoked but never completed: the outcome is unknown (info), open to the end.
    for _op_id, (inv_t, op_name) in pending.items():
        oc = codes.get(op_name)
        if oc is None:
            oc = codes[op_name] = idx.op_code(op_name)
        idx.open_at_end += 1
        add_inv(inv_t)
        add_done(OPEN)
        add_out(2)
        add_op(oc)
        add_lat(float("nan"))
    idx.invoke_t, idx.done_t = array("q", inv_ts), array("q", done_ts)
    idx.outcome, idx.op, idx.latency_ms = array("b", outcomes), array("h", ops), array("d", lats)
    idx.finish()
    return idx


def _write_ids(record: RunRecord, rec: HistoryLine) -> WriteIds:
    try:
        return write_ids(rec)
    except msgspec.ValidationError as exc:
        raise RecordError(
            f"operation {rec.op_id}: malformed result: {exc}", file=record.path(HISTORY)
        ) from None


def ops_index(record: RunRecord) -> OpsIndex | None:
    """The history's columns, computed once per record (None without history.jsonl)."""
    if not record.has(HISTORY):
        return None
    return record.memo("ops_index", lambda: build_ops_index(record))
