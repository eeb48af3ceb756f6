"""The built-in chain record (chain/*.jsonl, l2chaos.chainrecord) as checkers read it:
the final canonical chain, the reorgs the probes saw, the rollbacks the scenario
declared, and what explains a block leaving the chain.

A block of number N seen at time t (the head then, or the block of a write's receipt)
may leave the canonical chain only through

- a declared rollback (a `chain.rollback` fault) injected after t to a block below N;
- an observed reorg (chain/reorgs.jsonl) recorded after t whose common ancestor is
  below N, no deeper than `max_reorg_depth` (a single sequencer reorgs never: 0), and
  not itself the work of a declared rollback.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from l2chaos.params import Duration, param, params
from l2chaos.rundir.json_types import JsonObject

from .record import RunRecord

__all__ = ["ChainView", "Reorg", "ReorgParams", "Rollback", "chain_view"]


@params
class ReorgParams:
    """What the checkers of a chain record allow: reorgs up to a depth, and steps back
    shortly after a declared rollback."""

    max_reorg_depth: int = param(
        0, "chain record: deepest reorg allowed without a declared rollback (0: none)", min=0
    )
    rollback_settle: Duration = param(
        Duration.of(s=10),
        "chain record: how long after a declared rollback a step back is its work",
        min=Duration(0),
    )


@dataclass(frozen=True)
class Rollback:
    t_ns: int
    to_block: int | None
    label: str


@dataclass(frozen=True)
class Reorg:
    t_ns: int
    from_number: int
    from_hash: str
    to_number: int
    to_hash: str
    ancestor: int  # highest block kept (the common ancestor, or a lower bound)
    depth: int
    declared: Rollback | None  # the declared rollback that made it, if one did

    def evidence(self) -> JsonObject:
        return {
            "t_ns": self.t_ns,
            "from": {"number": self.from_number, "hash": self.from_hash},
            "to": {"number": self.to_number, "hash": self.to_hash},
            "common_ancestor": self.ancestor,
            "depth": self.depth,
        }


@dataclass
class ChainView:
    by_number: dict[int, str] = field(default_factory=dict)
    parents: dict[int, str] = field(default_factory=dict)
    tx_block: dict[str, int] = field(default_factory=dict)
    rollbacks: list[Rollback] = field(default_factory=list)
    reorgs: list[Reorg] = field(default_factory=list)

    @property
    def head(self) -> int | None:
        return max(self.by_number, default=None)

    def explain(
        self, number: int, after_t_ns: int, max_depth: int
    ) -> tuple[str, Rollback | Reorg] | None:
        """Why block `number`, seen at `after_t_ns`, may have left the chain:
        ("rollback", Rollback) or ("reorg", Reorg); None when nothing explains it."""
        for rb in self.rollbacks:
            if rb.t_ns >= after_t_ns and (rb.to_block is None or rb.to_block < number):
                return "rollback", rb
        for rg in self.reorgs:
            fits = rg.t_ns >= after_t_ns and rg.ancestor < number and rg.declared is None
            if fits and rg.depth <= max_depth:
                return "reorg", rg
        return None


def _declared(record: RunRecord) -> list[Rollback]:
    out: list[Rollback] = []
    for f in record.declared_rollbacks():
        details = f.details if isinstance(f.details, dict) else {}
        declared = details.get("declared") or details.get("answer") or {}
        to = declared.get("to_block") if isinstance(declared, dict) else None
        out.append(Rollback(f.inject_t_ns or 0, to if isinstance(to, int) else None, f.label))
    return out


def chain_view(record: RunRecord, settle_ns: int) -> ChainView:
    """The chain record read once per record (a reorg within `settle_ns` after a
    declared rollback, going no lower than its target, is that rollback's work)."""

    def compute() -> ChainView:
        view = ChainView(rollbacks=_declared(record))
        for b in record.chain_blocks():
            view.by_number[b.number] = b.hash
            view.parents[b.number] = b.parent_hash
            for tx in b.tx_hashes:
                view.tx_block[tx.lower()] = b.number
        for r in record.chain_reorgs():
            to_number, t = r.to_number, r.t_ns
            anc = r.ancestor_at_most if r.ancestor_at_most is not None else r.common_ancestor
            ancestor = anc if anc is not None else to_number - 1
            made_by = next(
                (
                    rb
                    for rb in view.rollbacks
                    if rb.t_ns <= t <= rb.t_ns + settle_ns
                    and (rb.to_block is None or rb.to_block <= ancestor)
                ),
                None,
            )
            view.reorgs.append(
                Reorg(
                    t, r.from_number, r.from_hash, to_number, r.to_hash, ancestor, r.depth,
                    made_by,
                )
            )  # fmt: skip
        return view

    return record.memo(f"chain_view:{settle_ns}", compute)
