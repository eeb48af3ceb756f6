"""chain_consistency: block numbers strictly increase and parent hashes chain, except
across a declared rollback, after which the state root equals the one recorded at the
rollback block, recomputed from the replayed ledgers.

From the chain record of a JSON-RPC node (chain/, any stack with a `chain` probe), with
opaque hashes: the final canonical chain links up (number + 1, parent hash); the head
never steps back nor changes a block's hash unless a rollback was declared (a
`chain.rollback` fault, within `rollback_settle` before the step) or the step is a
recorded reorg no deeper than `max_reorg_depth` (0 by default: a single sequencer
never reorgs); every head the probes saw is in the final chain unless such a step took
it out.

On top of that, from an exchange's audit export (audit/blocks.jsonl (every block in production order, orphaned ones included):

- every block's hash is sha256("{number}|{parent_hash}|{state_root}|{tx_root}|{chain_ts_ns}");
- in production order each block is number + 1 of the one before and names its hash as
  parent, unless a rollback came between them: then it continues from the rollback
  target N (number N + 1, parent = the hash of block N), the stack's `rollback` event
  says so (`to_block` N, `to_hash`, the `state_root` it restored, the `orphaned` seqs),
  the scenario declared it (a `chain.rollback` fault in faults.jsonl), the restored
  root equals the root recorded at block N, and exactly the blocks after N produced
  before the rollback are marked non-canonical;
- the canonical chain is contiguous (number + 1, parent hash) from its first block;
- with the audit header and events present, the state root of every canonical block
  (`replay_roots: all`, the default: a root that lags a block or misses an account is
  caught where it happens; `final`: the rollback targets and the last block;
  `rollbacks`: the rollback targets only) is recomputed from the replayed ledgers
  (algorithm in docs/architecture.md) and must equal the recorded one.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from l2chaos.params import param, params
from l2chaos.rundir.events import Event

from ._chain import ReorgParams, chain_view
from .base import Checker, Findings, Verdict
from .ledger import IncrementalRoot, LedgerState, block_hash
from .record import AUDIT, CHAIN, RunRecord
from .replay import FOLLOWERS, Follower, Replayed, Step, replay, shared_follower


@dataclass
class _Block:
    seq: int
    number: int
    hash: str
    parent_hash: str
    state_root: str
    canonical: bool
    host_ts_ns: int | None


@params
class ChainParams(ReorgParams):
    replay_roots: Literal["rollbacks", "final", "all"] = param(
        "all", "where to recompute state roots from the replayed ledgers"
    )


class ChainConsistency(Checker[ChainParams]):
    name = "chain_consistency"
    summary = (
        "Block numbers increase and parent hashes chain, except across a declared "
        "rollback, after which the state root equals the one recorded at the rollback block."
    )
    # audit/blocks.jsonl (an exchange's export) or chain/blocks.jsonl (the chain record)
    needs: ClassVar[tuple[str, ...]] = ()

    def check(self, record: RunRecord) -> Verdict:
        has_audit, has_chain = record.has(AUDIT.BLOCKS), record.has(CHAIN.BLOCKS)
        if not has_audit and not has_chain:
            return self.not_applicable(
                f"the run record has neither {AUDIT.BLOCKS} (the stack's audit export) nor "
                f"{CHAIN.BLOCKS} (a `chain` probe's record)"
            )
        found = self.findings()
        checked: dict[str, int] = {}
        details: dict[str, Any] = {}
        work = 0
        if has_audit:
            c, d, w = self._audit(record, found)
            checked, details, work = c, d, w
        if has_chain:
            c, d, w = self._opaque(record, found)
            checked.update(c)
            details["chain_record"] = d
            work += w
        return self.verdict(checked, found, work=work, what="blocks", details=details)

    # -------------------------------------------------------- the chain record

    def _opaque(
        self, record: RunRecord, found: Findings
    ) -> tuple[dict[str, int], dict[str, Any], int]:
        """Opaque hashes: the final chain links up, and every head the probes saw is in
        it unless a declared rollback or a reorg the probes saw took it out; a reorg
        deeper than `max_reorg_depth` that no declared rollback made is a violation."""
        view = chain_view(record, self.p.rollback_settle.ns)
        max_depth = self.p.max_reorg_depth
        links = 0
        numbers = sorted(view.by_number)
        for prev, cur in itertools.pairwise(numbers):
            links += 1
            if cur != prev + 1 or view.parents[cur] != view.by_number[prev]:
                found.add(
                    f"final chain broken between block {prev} and {cur}",
                    block=cur,
                    expected={"number": prev + 1, "parent_hash": view.by_number[prev]},
                    seen={"number": cur, "parent_hash": view.parents[cur]},
                )
        reorgs = 0
        for rg in view.reorgs:
            reorgs += 1
            if rg.declared is None and rg.depth > max_depth:
                found.add(
                    f"the head stepped back from block {rg.from_number} to {rg.to_number} "
                    f"(depth {rg.depth}) without a declared rollback",
                    **rg.evidence(),
                    expected=f"no reorg deeper than {max_depth} (max_reorg_depth)",
                )
        heads = 0
        for h in record.chain_heads():
            heads += 1
            n, t = h.number, h.t_ns
            if view.by_number.get(n) == h.hash:
                continue
            if view.explain(n, t, max_depth) is None and not any(
                rg.t_ns >= t and rg.ancestor < n for rg in view.reorgs
            ):
                found.add(
                    f"block {n} ({h.hash}), the head at t_ns {t}, is not in the final chain, "
                    "and no declared rollback or step back of the head explains it",
                    block=n,
                    t_ns=t,
                    seen=h.hash,
                    expected=view.by_number.get(n, f"the final head is {view.head}"),
                )
        checked = {"chain_links": links, "heads": heads, "reorgs": reorgs}
        details = {
            "final_head": view.head,
            "blocks": len(numbers),
            "reorgs_seen": reorgs,
            "declared_rollbacks": len(view.rollbacks),
        }
        return checked, details, len(numbers) + heads

    # ----------------------------------------------------------- audit export

    def _audit(
        self, record: RunRecord, found: Findings
    ) -> tuple[dict[str, int], dict[str, Any], int]:
        parsed, bad_shape = _audit_blocks(record)
        hashes_ok = 0
        for blk, want in parsed:
            if want != blk.hash:
                found.add(
                    f"block {blk.number} (seq {blk.seq}): hash does not match its contents",
                    block=blk.number,
                    block_seq=blk.seq,
                    expected=want,
                    seen=blk.hash,
                )
            else:
                hashes_ok += 1
        blocks = sorted((blk for blk, _ in parsed), key=lambda x: x.seq)
        rollbacks = _rollbacks(record)
        declared = record.declared_rollbacks()
        links, rb_checked, orphan_ok = self._production_order(blocks, rollbacks, declared, found)
        canon_links = self._canonical_chain(blocks, found)
        roots = self._roots(record, blocks, rollbacks, found)
        checked = {
            "blocks": hashes_ok,
            "links": links + canon_links,
            "rollbacks": rb_checked,
            "roots": roots,
        }
        details = {
            "blocks_total": len(blocks),
            "malformed_blocks": bad_shape,
            "canonical_head": max((b.number for b in blocks if b.canonical), default=None),
            "orphaned_blocks": orphan_ok,
            "rollbacks": len(rollbacks),
            "declared_rollbacks": len(declared),
        }
        return checked, details, len(blocks) + bad_shape

    # ------------------------------------------------------------------ order

    def _production_order(
        self,
        blocks: list[_Block],
        rollbacks: list[Event],
        declared: list[Any],
        found: Findings,
    ) -> tuple[int, int, int]:
        by_number_canon = {b.number: b for b in blocks if b.canonical}
        pending = list(rollbacks)
        links = rb_checked = 0
        orphaned_declared: set[int] = set()
        for ev in rollbacks:
            orphaned = ev.payload.get("orphaned")
            if isinstance(orphaned, list):
                orphaned_declared.update(s for s in orphaned if isinstance(s, int))
        used_declarations = 0
        for prev, cur in itertools.pairwise(blocks):
            links += 1
            if cur.number == prev.number + 1 and cur.parent_hash == prev.hash:
                continue
            if cur.number <= prev.number or (
                cur.number == prev.number + 1 and cur.parent_hash != prev.hash
            ):
                # only a rollback to cur.number - 1 explains this
                target = cur.number - 1
                match = next((e for e in pending if e.payload.get("to_block") == target), None)
                ev_where = {
                    "block": cur.number,
                    "block_seq": cur.seq,
                    "previous_block": prev.number,
                }
                if match is None:
                    found.add(
                        f"block {cur.number} (seq {cur.seq}) follows block {prev.number} "
                        "without a rollback event explaining it",
                        **ev_where,
                        expected={"number": prev.number + 1, "parent_hash": prev.hash},
                        seen={"number": cur.number, "parent_hash": cur.parent_hash},
                    )
                    continue
                pending.remove(match)
                rb_checked += 1
                data = match.payload
                if used_declarations >= len(declared):
                    found.add(
                        f"rollback to block {target} was not declared by the scenario "
                        "(no chain.rollback fault in the fault log)",
                        **ev_where,
                        to_block=target,
                        event_seq=match.seq,
                    )
                used_declarations += 1
                base = by_number_canon.get(target)
                if base is None:
                    found.add(
                        f"rollback target block {target} is not in the canonical chain",
                        **ev_where,
                        to_block=target,
                    )
                    continue
                if cur.parent_hash != base.hash or data.get("to_hash") not in (None, base.hash):
                    found.add(
                        f"block {cur.number} after the rollback does not continue from block {target}",
                        **ev_where,
                        expected=base.hash,
                        seen={"parent_hash": cur.parent_hash, "to_hash": data.get("to_hash")},
                    )
                if data.get("state_root") != base.state_root:
                    found.add(
                        f"rollback to block {target}: restored state root differs from the one "
                        "recorded at that block",
                        **ev_where,
                        to_block=target,
                        expected=base.state_root,
                        seen=data.get("state_root"),
                    )
                should = {b.seq for b in blocks if base.seq < b.seq < cur.seq and b.number > target}
                orphaned = data.get("orphaned")
                listed = (
                    {s for s in orphaned if isinstance(s, int)}
                    if isinstance(orphaned, list)
                    else set()
                )
                still_canon = sorted(b.seq for b in blocks if b.seq in should and b.canonical)
                if still_canon or not should <= listed:
                    found.add(
                        f"rollback to block {target}: the blocks it orphaned are not all marked "
                        "non-canonical and listed",
                        **ev_where,
                        expected=sorted(should),
                        seen={"listed": sorted(listed), "still_canonical": still_canon},
                    )
            else:
                found.add(
                    f"block {cur.number} (seq {cur.seq}) skips numbers after block {prev.number}",
                    block=cur.number,
                    block_seq=cur.seq,
                    expected=prev.number + 1,
                    seen=cur.number,
                )
        for b in blocks:
            if not b.canonical and b.seq not in orphaned_declared:
                found.add(
                    f"block {b.number} (seq {b.seq}) is non-canonical but no rollback orphaned it",
                    block=b.number,
                    block_seq=b.seq,
                )
        for ev in list(pending):
            data = ev.payload
            to_block = data.get("to_block")
            base = by_number_canon.get(to_block) if isinstance(to_block, int) else None
            if not data.get("orphaned") and base is not None:
                # a rollback to the head itself orphans nothing; numbers just go on
                pending.remove(ev)
                rb_checked += 1
                if used_declarations >= len(declared):
                    found.add(
                        f"rollback to block {base.number} was not declared by the scenario "
                        "(no chain.rollback fault in the fault log)",
                        to_block=base.number,
                        event_seq=ev.seq,
                    )
                used_declarations += 1
                if data.get("state_root") != base.state_root:
                    found.add(
                        f"rollback to block {base.number}: restored state root differs from "
                        "the one recorded at that block",
                        to_block=base.number,
                        expected=base.state_root,
                        seen=data.get("state_root"),
                    )
        for ev in pending:
            found.add(
                f"rollback event {ev.seq} to block {ev.payload.get('to_block')} has no "
                "matching restart of the block numbers",
                event_seq=ev.seq,
                to_block=ev.payload.get("to_block"),
            )
        return links, rb_checked, len(orphaned_declared)

    def _canonical_chain(self, blocks: list[_Block], found: Findings) -> int:
        canon = [b for b in blocks if b.canonical]
        n = 0
        for prev, cur in itertools.pairwise(canon):
            n += 1
            if cur.number != prev.number + 1 or cur.parent_hash != prev.hash:
                found.add(
                    f"canonical chain broken between block {prev.number} and {cur.number}",
                    block=cur.number,
                    block_seq=cur.seq,
                    expected={"number": prev.number + 1, "parent_hash": prev.hash},
                    seen={"number": cur.number, "parent_hash": cur.parent_hash},
                )
        return n

    # ------------------------------------------------------------------ roots

    def _roots(
        self,
        record: RunRecord,
        blocks: list[_Block],
        rollbacks: list[Event],
        found: Findings,
    ) -> int:
        mode = self.p.replay_roots
        plan = _plan(record, blocks, rollbacks, mode)
        if plan is None:
            return 0
        order, canon_seqs = plan
        f = shared_follower(record, self.name) if mode == "all" else None
        if not (
            isinstance(f, _Roots)
            and not f.unplaced
            and f.canon == canon_seqs
            and len(f.order) == len(order)
        ):
            # replayed alone: other parameters, or the shared replay's events differ
            assert record.header is not None
            st = LedgerState(record.header.account("dust"))
            f = _Roots(order, canon_seqs, st, every=mode == "all")
            replay(record.events(), canon_seqs, st, [f], placed_only=True)
        for b, root in f.wrong:
            found.add(
                f"block {b.number} (seq {b.seq}): recorded state root differs from the "
                "root of the replayed ledgers",
                block=b.number,
                block_seq=b.seq,
                expected=root,
                seen=b.state_root,
            )
        return f.checked


def _audit_blocks(record: RunRecord) -> tuple[list[tuple[_Block, str]], int]:
    """audit/blocks.jsonl in file order, each block with the hash its contents give, and
    the number of malformed rows (read once per record: the roots replay needs them)."""

    def compute() -> tuple[list[tuple[_Block, str]], int]:
        parsed: list[tuple[_Block, str]] = []
        bad_shape = 0
        for b in record.blocks():
            seq, number, hash_, parent, root = b.seq, b.number, b.hash, b.parent_hash, b.state_root
            tx_root, chain_ts = b.tx_root, b.chain_ts_ns
            if (
                seq is None or number is None or hash_ is None or parent is None
                or root is None or tx_root is None or chain_ts is None
            ):  # fmt: skip
                bad_shape += 1
                continue
            blk = _Block(seq, number, hash_, parent, root, b.canonical, b.host_ts_ns)
            want = block_hash(number, parent, root, tx_root, chain_ts)
            parsed.append((blk, want))
        return parsed, bad_shape

    return record.memo("audit_blocks", compute)


def _rollbacks(record: RunRecord) -> list[Event]:
    return [ev for ev in record.events(kinds=("rollback",)) if ev.data is not None]


def _plan(
    record: RunRecord, blocks: list[_Block], rollbacks: list[Event], mode: str
) -> tuple[list[_Block], frozenset[int]] | None:
    """The canonical blocks whose roots `mode` compares, and the seqs of every canonical
    block (whose events are replayed); None when there is nothing to compare."""
    if record.header is None or not record.has(AUDIT.EVENTS):
        return None
    canon = [b for b in blocks if b.canonical]
    if not canon:
        return None
    by_number = {b.number: b for b in canon}
    targets: set[int] = set()
    for ev in rollbacks:
        t = ev.payload.get("to_block")
        if isinstance(t, int) and t in by_number:
            targets.add(by_number[t].seq)
    if mode in ("final", "all"):
        targets.add(canon[-1].seq)
    if mode != "all" and not targets:
        return None
    order = [b for b in canon if mode == "all" or b.seq in targets]
    return order, frozenset(b.seq for b in canon)


class _Roots(Follower):
    """Compares the root of the replayed state with each block of `order` once the
    events of every block before it are applied."""

    def __init__(
        self, order: list[_Block], canon: frozenset[int], st: LedgerState, *, every: bool
    ) -> None:
        self.order = order
        self.canon = canon
        self.inc = IncrementalRoot(st) if every else None
        self.i = 0  # next block in `order` to compare
        self.checked = 0
        self.last_bs: int | None = None
        self.wrong: list[tuple[_Block, str]] = []  # (block, the replayed root)
        # a ledger in no block: the roots replay leaves it out, the shared one does not
        self.unplaced = False

    @classmethod
    def shared(cls, record: RunRecord, st: LedgerState) -> Follower | str:
        """Every block's root (the default), in the shared replay when its canonical
        blocks are the replay's."""
        blocks = sorted((blk for blk, _ in _audit_blocks(record)[0]), key=lambda x: x.seq)
        plan = _plan(record, blocks, _rollbacks(record), "all")
        if plan is None or plan[1] != record.canonical_seqs():
            return "no state roots to compare along the shared replay"
        return cls(*plan, st, every=True)

    def _through(self, seq_done: float, st: LedgerState) -> None:
        """Compare every block in `order` with seq < seq_done (its events are applied)."""
        order, inc = self.order, self.inc
        while self.i < len(order) and order[self.i].seq < seq_done:
            b = order[self.i]
            self.i += 1
            root = inc.root() if inc is not None else st.state_root()
            self.checked += 1
            if root != b.state_root:
                self.wrong.append((b, root))

    def before(self, ev: Event, st: LedgerState) -> None:
        bs = ev.block_seq
        if bs is None:
            self.unplaced = self.unplaced or ev.has_ledger
            return
        if bs != self.last_bs:
            self._through(bs, st)
            self.last_bs = bs

    def after(self, ev: Event, step: Step, st: LedgerState) -> None:
        inc, d = self.inc, step.delta
        if inc is None or d is None:
            return  # no ledger, or a malformed one (fund_conservation reports it)
        dirty = inc.dirty
        dirty.update(d.by_account)
        for e in (ev.ledger.pos if ev.ledger is not None else None) or ():
            dirty.add(e[0])
        if d.dust_micro and st.dust_account is not None:
            dirty.add(st.dust_account)

    def finish(self, st: LedgerState, replayed: Replayed) -> None:
        self._through(float("inf"), st)


FOLLOWERS[ChainConsistency.name] = _Roots.shared
