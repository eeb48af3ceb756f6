"""deposits_settle: every deposit locked on L1 ends credited exactly once on the final
canonical chain, or pending on the bridge (to be credited later), with the reason.

Per L1 lock nonce (audit/bridge_l1.jsonl), against the `deposit_credited` events (in
canonical and orphaned blocks), the `rollback` events and the bridge's final message
state (audit/bridge_messages.jsonl, direction `l1_to_l2`):

- at most one credit on the final canonical chain;
- credited on the chain: the bridge records that credit (status `credited`, the same
  block), unless its follower had not reached the credit event yet (lag);
- not credited on the chain: the bridge holds the message `pending`, so its relayer
  credits it (again) later. A message the bridge keeps `credited` in a block that a
  rollback orphaned, or in a block without that credit, is a deposit lost to the
  trader while the escrow still counts it as paid out; lag excepted: the follower
  had not applied that rollback yet. A pending deposit the final chain refused as
  already consumed (a canonical transaction of audit/transactions.jsonl with that
  nonce, rejected `message_already_consumed`) is lost too: it can never be credited.

"The follower had not reached event E" reads `event_cursor` of audit/bridge_state.json
(the last L2 event seq the bridge applied); without it the bridge is taken to have
caught up (the export is taken after the run). fund_conservation proves the sums (the
escrow reconciles whichever way a message is counted); this proves each deposit's
path. Pending deposits are listed with their reason (orphaned by a rollback, relayed
and not yet credited, never relayed). Work = L1 locks.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

from l2chaos.rundir.bridge import BridgeMessage
from l2chaos.rundir.transactions import Transaction

from .base import Checker, Findings, NoParams, Verdict
from .record import AUDIT, RunRecord

_SHOWN_PENDING = 20
_Evidence = dict[str, int | str | None]  # what a finding names: nonce, account, amount, ...
_CONSUMED = "message_already_consumed"


@dataclass
class _Credit:
    event_seq: int
    block: int | None
    block_seq: int | None
    canonical: bool


@dataclass
class _Deposit:
    nonce: int | None
    account: int | None
    amount: int | None
    credits: list[_Credit] = field(default_factory=list)

    def on_chain(self) -> list[_Credit]:
        return [c for c in self.credits if c.canonical]

    def orphaned(self) -> list[_Credit]:
        return [c for c in self.credits if not c.canonical]


class DepositsSettle(Checker[NoParams]):
    name = "deposits_settle"
    summary = (
        "Every L1 deposit lock ends credited exactly once on the final canonical chain, "
        "or pending on the bridge to be credited later (a credit a rollback orphaned is "
        "credited again), with the reason."
    )
    needs: ClassVar[tuple[str, ...]] = (AUDIT.BRIDGE_L1, AUDIT.BRIDGE_MESSAGES, AUDIT.EVENTS)

    def check(self, record: RunRecord) -> Verdict:
        canonical = record.canonical_seqs()
        deposits = {
            row.nonce: _Deposit(row.nonce, row.account, row.amount)
            for row in record.bridge_l1()
            if row.kind == "lock"
        }
        orphaned_by: dict[object, int] = {}  # orphaned block seq -> the rollback event's seq
        for ev in record.events(kinds=("deposit_credited", "rollback")):
            data = ev.payload
            if ev.kind == "rollback":
                orphaned = data.get("orphaned")
                for s in orphaned if isinstance(orphaned, list) else ():
                    orphaned_by.setdefault(s, int(cast("int", ev.seq)))
                continue
            nonce = data.get("nonce")
            dep = deposits.get(nonce) if isinstance(nonce, int) else None
            if dep is not None:  # a credit without a lock is fund_conservation's finding
                bs = ev.block_seq
                on_chain = canonical is None or bs in canonical
                dep.credits.append(_Credit(int(cast("int", ev.seq)), ev.block, bs, on_chain))
        messages = {m.nonce: m for m in record.bridge_messages() if m.direction == "l1_to_l2"}
        state = record.bridge_state()
        cursor = None if state is None else state.event_cursor
        judge = _Judge(self.findings(), cursor, orphaned_by)
        for tx in record.transactions(contains=(_CONSUMED,)):
            nonce = tx.deposit_nonce
            if (
                tx.reason == _CONSUMED
                and nonce is not None
                and (canonical is None or tx.block_seq in canonical)
            ):
                judge.refused.setdefault(nonce, tx)
        for nonce in sorted(deposits, key=str):
            judge.deposit(deposits[nonce], messages.get(nonce))
        details: dict[str, object] = {
            "pending_reasons": dict(judge.reasons),
            "bridge_event_cursor": judge.cursor,
        }
        if judge.pending:
            details["pending"] = judge.pending[:_SHOWN_PENDING]
        return self.verdict(
            judge.checked, judge.found, work=len(deposits), what="L1 deposit locks",
            details=details,
        )  # fmt: skip


class _Judge:
    def __init__(self, found: Findings, cursor: int | None, orphaned_by: dict[object, int]) -> None:
        self.found = found
        self.cursor = cursor
        self.orphaned_by = orphaned_by
        self.checked = {"credited_once": 0, "credited_again_after_rollback": 0, "pending": 0}
        self.reasons: Counter[str] = Counter()
        self.pending: list[dict[str, object]] = []
        # deposit nonce -> a canonical "consumed" rejection of it (Transaction.deposit_nonce:
        # the stack's transaction log writes the nonce as text, its L1 log as a number)
        self.refused: dict[int, Transaction] = {}

    def _applied(self, event_seq: int) -> bool:
        """The bridge's follower had applied this event when the record was taken."""
        return self.cursor is None or self.cursor >= event_seq

    def deposit(self, dep: _Deposit, msg: BridgeMessage | None) -> None:
        ev: _Evidence = {"nonce": dep.nonce, "account": dep.account, "amount": dep.amount}
        if msg is None:
            self.found.add(f"L1 deposit nonce {dep.nonce} has no bridge message", **ev)
            return
        chain = dep.on_chain()
        status, at = msg.status, msg.l2_block_seq
        seen: _Evidence = {"status": status, "l2_block_seq": at, "attempts": msg.attempts}
        if len(chain) > 1:
            self.found.add(
                f"deposit nonce {dep.nonce} is credited {len(chain)} times on the final chain",
                **ev, blocks=[c.block for c in chain], event_seqs=[c.event_seq for c in chain],
                expected=1, seen=len(chain),
            )  # fmt: skip
        elif chain:
            self._credited(dep, chain[0], status, at, ev, seen)
        elif status == "pending":
            self._pending(dep, msg, ev)
        else:
            self._lost(dep, status, at, ev, seen)

    def _credited(
        self,
        dep: _Deposit,
        c: _Credit,
        status: str | None,
        at: int | None,
        ev: _Evidence,
        seen: _Evidence,
    ) -> None:
        if (status != "credited" or at != c.block_seq) and self._applied(c.event_seq):
            self.found.add(
                f"block {c.block}: deposit nonce {dep.nonce} is credited on the chain (event "
                f"{c.event_seq}), but the bridge, past that event, holds it {status} at block "
                f"seq {at}",
                **ev, block=c.block, event_seq=c.event_seq, bridge_cursor=self.cursor,
                expected={"status": "credited", "l2_block_seq": c.block_seq}, seen=seen,
            )  # fmt: skip
            return
        self.checked["credited_once"] += 1
        if dep.orphaned():
            self.checked["credited_again_after_rollback"] += 1

    def _lost(
        self, dep: _Deposit, status: str | None, at: int | None, ev: _Evidence, seen: _Evidence
    ) -> None:
        rollback = self.orphaned_by.get(at)
        if status == "credited" and rollback is not None and not self._applied(rollback):
            self._note_pending(dep, "the bridge had not yet applied the rollback that orphaned it")
            return
        why = (
            f"the rollback (event {rollback}) orphaned that block"
            if rollback is not None
            else "the chain has no credit for it"
        )
        self.found.add(
            f"deposit nonce {dep.nonce} is not credited on the final chain, but the bridge "
            f"holds it {status} at block seq {at}: {why}, and it will never be relayed again",
            **ev, rollback_event_seq=rollback, bridge_cursor=self.cursor,
            orphaned_credits=[c.event_seq for c in dep.orphaned()],
            expected={"status": "pending"}, seen=seen,
        )  # fmt: skip

    def _pending(self, dep: _Deposit, msg: BridgeMessage, ev: _Evidence) -> None:
        attempts = msg.attempts
        refused = self.refused.get(dep.nonce) if dep.nonce is not None else None
        if refused is not None:
            self.found.add(
                f"block {refused.block}: deposit nonce {dep.nonce} is pending on the "
                "bridge, but the final chain refused it as already consumed and holds no "
                "credit of it: it can never be credited",
                **ev, block=refused.block, tx=refused.hash, attempts=attempts,
                orphaned_credits=[c.event_seq for c in dep.orphaned()],
                expected="one credit on the final chain", seen=_CONSUMED,
            )  # fmt: skip
            return
        if dep.orphaned():
            reason = "credited in a block a rollback orphaned; pending, to be credited again"
        elif attempts is not None and attempts > 0:
            reason = "relayed, not yet credited"
        else:
            reason = "not yet relayed"
        self._note_pending(dep, reason, attempts=attempts)

    def _note_pending(self, dep: _Deposit, reason: str, **extra: Any) -> None:
        self.checked["pending"] += 1
        self.reasons[reason] += 1
        self.pending.append(
            {"nonce": dep.nonce, "account": dep.account, "amount": dep.amount,
             "reason": reason, **extra}
        )  # fmt: skip
