"""acknowledged_writes_durable: every write the history shows acknowledged (`ok`) is
in the final state, or was removed by a declared rollback and is counted as such.

A write is joined to the audit export by its id: orders, cancels and withdrawals by
`tx_hash` (audit/transactions.jsonl: accepted, in a canonical block); deposits by the
bridge `nonce` (an L1 lock in audit/bridge_l1.jsonl; whether it was credited on L2 yet
is fund_conservation's business) or, when the result has one, by `tx_hash`. A write in
a block that a declared rollback orphaned (a `chain.rollback` fault in the fault log,
and the stack's `rollback` event listing the block) is counted as rolled back, not
lost. Everything else is a violation: not found at all, found rejected, or orphaned
without a declared rollback. Work = the writes of the history; none acknowledged out of
some is a failure.

With the chain record of a JSON-RPC node (chain/blocks.jsonl, any protocol's writes:
a receipt in block N, `tx_hash` and `block` in the result) the final canonical chain
the node gave at wind-down is the truth: the transaction must be in it, unless a
declared rollback or an observed reorg no deeper than `max_reorg_depth` took block N
out after the acknowledgement (counted as rolled back / reorged).
"""

from __future__ import annotations

from typing import Any, ClassVar

from l2chaos.params import param, params
from l2chaos.rundir.json_types import JsonObject

from ._chain import ReorgParams, chain_view
from .base import Checker, Findings, Verdict
from .ops import AckedWrite, OpsIndex, ops_index
from .record import AUDIT, CHAIN, HISTORY, RunRecord

# Where a transaction ended up, best first: accepted in a canonical block wins.
_RANK = {"durable": 3, "orphaned": 2, "rejected": 1}


def _write(w: AckedWrite) -> JsonObject:
    """Which acknowledged write a finding is about."""
    return {"op_id": w.op_id, "op": w.op, "account": w.account, "t_ns": w.t_ns}


@params
class DurableParams(ReorgParams):
    max_reorg_depth: int = param(
        0, "chain record: deepest reorg that may take acknowledged writes out (0: none)", min=0
    )


class AcknowledgedWritesDurable(Checker[DurableParams]):
    name = "acknowledged_writes_durable"
    summary = (
        "Every write acknowledged to a client is in the final state, or was removed by a "
        "declared rollback (counted as such)."
    )
    # and audit/transactions.jsonl (an exchange's export) or chain/blocks.jsonl
    needs: ClassVar[tuple[str, ...]] = (HISTORY,)

    def check(self, record: RunRecord) -> Verdict:
        ops = ops_index(record)
        if ops is None:
            return self.not_applicable("history.jsonl is missing")
        if record.has(CHAIN.BLOCKS):
            return self._chain(record, ops)
        if not record.has(AUDIT.TRANSACTIONS):
            return self.not_applicable(
                f"the run record has neither {AUDIT.TRANSACTIONS} (the stack's audit export) "
                f"nor {CHAIN.BLOCKS} (a `chain` probe's record)"
            )
        found = self.findings()
        canonical = record.canonical_seqs()
        by_hash: dict[str, list[Any]] = {}
        by_nonce: dict[Any, list[Any]] = {}
        for w in ops.acked_writes:
            if w.tx_hash:
                by_hash.setdefault(w.tx_hash, []).append(w)
            elif w.op == "deposit" and w.nonce is not None:
                by_nonce.setdefault(w.nonce, []).append(w)
            else:
                found.add(
                    f"{w.op} {w.op_id} of account {w.account} was acknowledged without a "
                    "tx_hash or nonce to find it by",
                    **_write(w),
                    expected="tx_hash (or nonce for deposits) in the result",
                )
        # Where each acknowledged tx ended up: accepted in a canonical block wins.
        status: dict[str, tuple[str, int | None, int | None]] = {}
        for tx in record.transactions():
            h = tx.hash
            if h is None or h not in by_hash:
                continue
            bs = tx.block_seq
            in_canon = canonical is None or bs in canonical
            if tx.status == "accepted":
                state = "durable" if in_canon else "orphaned"
            else:
                state = "rejected"
            prev = status.get(h)
            if prev is None or _RANK[state] > _RANK[prev[0]]:
                status[h] = (state, bs, tx.block)
        orphaned_by_rollback = self._declared_orphans(record)
        declared = bool(record.declared_rollbacks())
        durable = rolled_back = 0
        for h, writes in by_hash.items():
            st = status.get(h)
            if st is not None and st[0] == "durable":  # the common case: nothing to say
                durable += len(writes)
                continue
            for w in writes:
                ev = {
                    "op_id": w.op_id,
                    "op": w.op,
                    "account": w.account,
                    "t_ns": w.t_ns,
                    "tx_hash": h,
                    "order_id": w.order_id,
                    "acked_block": w.block,
                }
                if st is None:
                    found.add(
                        f"{w.op} {w.op_id} of account {w.account} (tx {h}) was acknowledged "
                        "but is not in the chain",
                        **ev,
                        expected="accepted in a canonical block",
                        seen="absent",
                    )
                elif st[0] == "durable":
                    durable += 1
                elif st[0] == "orphaned" and declared and st[1] in orphaned_by_rollback:
                    rolled_back += 1
                else:
                    what = (
                        "rejected"
                        if st[0] == "rejected"
                        else "in an orphaned block without a declared rollback"
                    )
                    found.add(
                        f"{w.op} {w.op_id} of account {w.account} (tx {h}) was acknowledged "
                        f"but is {what} (block {st[2]})",
                        **ev,
                        block=st[2],
                        block_seq=st[1],
                        expected="accepted in a canonical block",
                        seen=st[0],
                    )
        if by_nonce and record.has(AUDIT.BRIDGE_L1):
            locked = {r.nonce for r in record.bridge_l1() if r.kind == "lock"}
            for nonce, writes in by_nonce.items():
                for w in writes:
                    if nonce in locked:
                        durable += 1
                    else:
                        found.add(
                            f"deposit {w.op_id} of account {w.account} (nonce {nonce}) was "
                            "acknowledged but has no L1 lock",
                            **_write(w),
                            nonce=nonce,
                            expected="an L1 lock with this nonce",
                            seen="absent",
                        )
        checked = {"durable": durable, "rolled_back": rolled_back, "lost": found.count}
        return self._verdict(
            ops,
            checked,
            found,
            {
                "durable": durable,
                "rolled_back": rolled_back,
                "deposits_unchecked": 0
                if not by_nonce or record.has(AUDIT.BRIDGE_L1)
                else sum(len(v) for v in by_nonce.values()),
            },
        )

    def _chain(self, record: RunRecord, ops: OpsIndex) -> Verdict:
        """Writes judged against the node's final chain (chain/blocks.jsonl): a receipt
        in block N must have its transaction in the final chain unless a declared
        rollback or an allowed reorg (see _chain.py) took block N out."""
        view = chain_view(record, self.p.rollback_settle.ns)
        max_depth = self.p.max_reorg_depth
        found = self.findings()
        counts = {"durable": 0, "rolled_back": 0, "reorged": 0}
        for w in ops.acked_writes:
            ev = {"op_id": w.op_id, "op": w.op, "account": w.account, "t_ns": w.t_ns}
            if not isinstance(w.tx_hash, str):
                found.add(f"{w.op} {w.op_id} was acknowledged without a tx_hash", **ev)
                continue
            if w.tx_hash.lower() in view.tx_block:
                counts["durable"] += 1
                continue
            n = w.block if isinstance(w.block, int) else None
            why = view.explain(n, w.t_ns, max_depth) if n is not None else None
            if why is not None:
                counts["rolled_back" if why[0] == "rollback" else "reorged"] += 1
                continue
            step = next(
                (
                    rg
                    for rg in view.reorgs
                    if n is not None and rg.t_ns >= w.t_ns and rg.ancestor < n
                ),
                None,
            )
            found.add(
                f"{w.op} {w.op_id} (tx {w.tx_hash}) was acknowledged in block {n} but is not in "
                "the final chain"
                + (f" (the head stepped back to block {step.to_number})" if step else ""),
                **ev,
                tx_hash=w.tx_hash,
                block=n,
                block_hash=w.block_hash,
                final_hash_at_block=view.by_number.get(n) if n is not None else None,
                final_head=view.head,
                step_back=step.evidence() if step else None,
                expected="the transaction in the final canonical chain",
                seen="absent",
            )
        checked = {**counts, "lost": found.count}
        return self._verdict(
            ops,
            checked,
            found,
            {**counts, "final_head": view.head},
        )

    def _verdict(
        self, ops: OpsIndex, checked: dict[str, int], found: Findings, details: JsonObject
    ) -> Verdict:
        """The verdict over the run's acknowledged writes."""
        return self.verdict(
            checked,
            found,
            work=len(ops.acked_writes),
            what="acknowledged writes",
            attempted=ops.writes_attempted(),
            succeeded=len(ops.acked_writes),
            details=details,
        )

    @staticmethod
    def _declared_orphans(record: RunRecord) -> set[int]:
        """Block seqs orphaned by the stack's rollback events."""
        out: set[int] = set()
        for ev in record.events(kinds=("rollback",)):
            orphaned = ev.payload.get("orphaned")
            if isinstance(orphaned, list):
                out.update(s for s in orphaned if isinstance(s, int))
        return out
