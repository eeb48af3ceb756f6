"""fund_conservation: exact integer identities over the replayed event ledgers.

The identities of research/domain.md section 4, recomputed from audit/events.jsonl
(ledgers of canonical blocks, in `seq` order), never from totals the stack reports:

- per event: Σ cash x 1e6 + Σ size x cached_index + dust_micro changes by exactly
  ΔN x 1e6 (ΔN = +amount for `deposit_credited`, -amount for `withdrawal`, else 0):
  fills, fees, liquidations, funding settlements and insurance moves are zero-sum;
- per event: Σ size per market is 0 (open interest nets to zero);
- fees: on `fill` (maker_fee + taker_fee) and `fee` (amount) events, the fees charged
  equal what the fees account is credited in the same ledger;
- the replayed state equals the stack's per-block snapshots (audit/balances.jsonl);
- the insurance fund is never negative at the end of a block unless an
  `insurance_shortfall` event has declared it;
- bridge (audit/bridge_l1.jsonl): every L2 credit matches exactly one L1 lock (same
  nonce, account, amount) and is credited at most once in the canonical chain; every L1
  release matches exactly one canonical L2 withdrawal; at the end
  escrow (Σ locks - Σ releases) == N + pending deposits + pending withdrawals, and the
  bridge's reported escrow (bridge_state.json) equals the recomputed one. Only
  canonical blocks count, so a deposit credited in a block a rollback orphaned is
  pending again, and a release for a rolled-back withdrawal is caught.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import msgspec
from l2chaos.rundir.balances import Balance
from l2chaos.rundir.bridge import L1Move
from l2chaos.rundir.events import Event

from .base import Checker, Findings, NoParams, Verdict
from .ledger import MICRO, LedgerState
from .ops import ops_index
from .record import AUDIT, RunRecord
from .replay import Follower, LedgerChecker, Replayed, Step

_FEE_FIELDS = {"fill": ("maker_fee", "taker_fee"), "fee": ("amount",)}


class _BridgeMove(NamedTuple):
    """A canonical L2 deposit credit or withdrawal, to be matched with the L1 ledger."""

    account: object
    amount: int
    block: int | None
    block_seq: int | None
    event_seq: int | None


class _Snapshots:
    """Merge-joins balances.jsonl (per block) with the replay."""

    def __init__(self, rows: Iterator[Balance], canonical: frozenset[int] | None) -> None:
        self._rows = rows
        self._canonical = canonical
        self._next: Balance | None = next(rows, None)
        self.compared = 0

    def flush(self, before_seq: float, st: LedgerState, found: Findings) -> None:
        """Compare every snapshot of blocks before `before_seq` with the replayed state."""
        while self._next is not None:
            row = self._next
            bs = row.block_seq
            if bs is not None and bs >= before_seq:
                return
            self._next = next(self._rows, None)
            if bs is None:
                continue
            if self._canonical is not None and bs not in self._canonical:
                continue
            self._compare(row, st, found)

    def _compare(self, row: Balance, st: LedgerState, found: Findings) -> None:
        acct = row.account
        if acct is None:
            return
        self.compared += 1
        replayed_cash = st.account_cash(acct)
        book = st.positions.get(acct)
        replayed = {m: p for m, p in book.items() if p[0] != 0} if book else {}
        seen = {
            m: (p[0], p[1]) for m, p in (row.positions or {}).items() if len(p) >= 2 and p[0] != 0
        }
        if row.cash != replayed_cash or seen != replayed:
            replayed_pos = {m: [s, c] for m, (s, c) in replayed.items()}
            seen_pos = {m: [s, c] for m, (s, c) in seen.items()}
            found.add(
                f"block {row.block}: account {acct}: the stack's snapshot differs from "
                "the replayed ledgers",
                block=row.block,
                block_seq=row.block_seq,
                account=acct,
                expected={"cash": replayed_cash, "positions": replayed_pos},
                seen={"cash": row.cash, "positions": seen_pos},
            )


class _Conservation(Follower):
    """The per-event and per-block identities, along the shared replay."""

    def __init__(self, record: RunRecord, st: LedgerState, found: Findings) -> None:
        header = record.header
        assert header is not None
        self.st = st
        self.found = found
        self.fees_acct = header.account("fees")
        self.ins_acct = header.account("insurance")
        self.snaps = _Snapshots(record.balances(), record.canonical_seqs())
        self.n_total = 0
        self.credits: dict[Any, list[_BridgeMove]] = {}
        self.withdrawals: dict[Any, list[_BridgeMove]] = {}
        self.shortfall = False
        self.ins_negative = False
        self.events_seen = self.replayed = self.orphaned = self.blocks = self.fee_checks = 0
        self.cur_bs: int | None = None
        self.cur_block: Any = None
        self.d_n = 0  # of the event in hand

    @classmethod
    def make(cls, record: RunRecord, st: LedgerState) -> Follower | str:
        if record.header is None:
            return "audit/header.json is missing"
        return cls(record, st, Findings(FundConservation.max_violations))

    def _end_block(self) -> None:
        self.blocks += 1
        ins_acct = self.ins_acct
        if ins_acct is None:
            return
        bal = self.st.account_cash(ins_acct)
        if bal < 0 and not self.shortfall:
            if not self.ins_negative:
                self.found.add(
                    f"block {self.cur_block}: the insurance fund is negative ({bal}) and no "
                    "insurance_shortfall event declared it",
                    block=self.cur_block,
                    block_seq=self.cur_bs,
                    account=ins_acct,
                    expected=">= 0 or a declared shortfall",
                    seen=bal,
                )
            self.ins_negative = True
        elif bal >= 0:
            self.ins_negative = False

    def before(self, ev: Event, st: LedgerState) -> None:
        bs = ev.block_seq
        if bs is not None and bs != self.cur_bs:
            if self.cur_bs is not None:
                self._end_block()
            self.snaps.flush(bs, st, self.found)
            self.cur_bs, self.cur_block = bs, ev.block
        kind = ev.kind
        d_n = 0
        if kind in ("deposit_credited", "withdrawal"):
            data = ev.payload
            amount = data.get("amount")
            if not isinstance(amount, int):
                self.found.add(
                    f"{kind} event {ev.seq} has no integer amount",
                    event_seq=ev.seq,
                    block=ev.block,
                    seen=amount,
                )
                amount = 0
            d_n = amount if kind == "deposit_credited" else -amount
            entry = _BridgeMove(data.get("account"), amount, ev.block, bs, ev.seq)
            target = self.credits if kind == "deposit_credited" else self.withdrawals
            target.setdefault(data.get("nonce"), []).append(entry)
        elif kind == "insurance_shortfall":
            self.shortfall = True
        self.d_n = d_n

    def after(self, ev: Event, step: Step, st: LedgerState) -> None:
        kind, d_n, found = ev.kind, self.d_n, self.found
        d = step.delta
        if step.error is not None:
            found.add(
                f"event {ev.seq} ({kind}): malformed ledger: {step.error}",
                event_seq=ev.seq,
                block=ev.block,
                kind=kind,
            )
            return
        if d is not None:
            self.replayed += 1
            if d.identity_micro != d_n * MICRO:
                found.at_event(
                    ev,
                    f"block {ev.block}: {kind} event {ev.seq} changed "
                    f"Σ cashx1e6 + Σ sizexindex + dust by {d.identity_micro} micro-quanta, "
                    f"expected {d_n * MICRO}",
                    accounts=sorted(d.by_account),
                    expected=d_n * MICRO,
                    seen=d.identity_micro,
                    difference=d.identity_micro - d_n * MICRO,
                )
            for m, moved in sorted(d.oi_change.items()):
                oi = st.open_interest.get(m, 0)
                if oi != 0 and moved != 0:
                    found.at_event(
                        ev,
                        f"block {ev.block}: {kind} event {ev.seq} left open "
                        f"interest on {m} at {oi} (Σ size must be 0)",
                        market=m,
                        expected=0,
                        seen=oi,
                    )
            fee_fields = _FEE_FIELDS.get(str(kind))
            if fee_fields and self.fees_acct is not None:
                self._fees(ev, fee_fields, d.by_account.get(self.fees_acct, 0))
        elif d_n != 0:
            found.at_event(
                ev, f"{kind} event {ev.seq} moved {d_n} across the bridge without a ledger"
            )
        self.n_total += d_n

    def _fees(self, ev: Event, fee_fields: tuple[str, ...], credited: int) -> None:
        data = ev.payload
        charged = [data.get(f) for f in fee_fields if f in data]
        if charged and all(isinstance(c, int) for c in charged):
            self.fee_checks += 1
            total = sum(c for c in charged if isinstance(c, int))
            if total != credited:
                self.found.at_event(
                    ev,
                    f"block {ev.block}: {ev.kind} event {ev.seq} charged "
                    f"fees of {total} but the fees account was credited {credited}",
                    account=self.fees_acct,
                    expected=total,
                    seen=credited,
                )

    def finish(self, st: LedgerState, replayed: Replayed) -> None:
        if self.cur_bs is not None:
            self._end_block()
        self.snaps.flush(float("inf"), st, self.found)
        self.events_seen, self.orphaned = replayed.read, replayed.skipped

    def verdict(self, checker: Checker[Any], record: RunRecord) -> Verdict:
        assert isinstance(checker, FundConservation)
        st, found = self.st, self.found
        if st.identity_micro != self.n_total * MICRO:
            found.add(
                "at the end: Σ cashx1e6 + Σ sizexindex + dust != Nx1e6",
                expected=self.n_total * MICRO,
                seen=st.identity_micro,
                difference=st.identity_micro - self.n_total * MICRO,
            )
        for m, oi in sorted(st.open_interest.items()):
            if oi != 0:
                found.add(
                    f"at the end: open interest on {m} is {oi}", market=m, expected=0, seen=oi
                )

        bridge = checker._bridge(record, self.credits, self.withdrawals, self.n_total, found)
        checked = {
            "events": self.replayed,
            "blocks": self.blocks,
            "snapshots": self.snaps.compared,
            "fee_checks": self.fee_checks,
            **bridge.pop("checked"),
        }
        ops = ops_index(record)
        work = self.events_seen + (len(ops.acked_writes) if ops is not None else 0)
        ins_acct = self.ins_acct
        details = {
            "deposits_minus_withdrawals": self.n_total,
            "orphaned_events_skipped": self.orphaned,
            "final_identity_micro": st.identity_micro,
            "insurance_fund": st.account_cash(ins_acct) if ins_acct is not None else None,
            "shortfall_declared": self.shortfall,
            **bridge,
        }
        return checker.verdict(
            checked, found, work=work, what="events or acknowledged writes", details=details
        )


class FundConservation(LedgerChecker[NoParams]):
    name = "fund_conservation"
    summary = (
        "Exact integer identities at every event and block and at the end: zero-sum "
        "ledgers, open interest nets to zero, fees credited, snapshots match the replay, "
        "insurance fund non-negative, bridge escrow reconciles (also across a rollback)."
    )
    follower = _Conservation.make

    def _bridge(
        self,
        record: RunRecord,
        credits: dict[Any, list[_BridgeMove]],
        withdrawals: dict[Any, list[_BridgeMove]],
        n_total: int,
        found: Findings,
    ) -> dict[str, Any]:
        if not record.has(AUDIT.BRIDGE_L1):
            return {
                "checked": {},
                "bridge": "not checked: audit/bridge_l1.jsonl is missing",
            }
        locks: dict[int | None, list[L1Move]] = {}
        releases: dict[int | None, list[L1Move]] = {}
        escrow = 0
        for row in record.bridge_l1():
            kind, amount = row.kind, row.amount
            if amount is None or kind not in ("lock", "release"):
                found.add(
                    f"bridge L1 record {row.seq} is malformed",
                    seen=msgspec.structs.asdict(row),
                    expected="lock or release with an integer amount",
                )
                continue
            (locks if kind == "lock" else releases).setdefault(row.nonce, []).append(row)
            escrow += amount if kind == "lock" else -amount
        for nonce, rows in locks.items():
            if len(rows) > 1:
                found.add(
                    f"L1 deposit nonce {nonce} was locked {len(rows)} times",
                    nonce=nonce,
                    seen=[r.seq for r in rows],
                )
        for nonce, cl in credits.items():
            first = cl[0]
            if len(cl) > 1:
                found.add(
                    f"deposit nonce {nonce} was credited {len(cl)} times in the canonical chain",
                    nonce=nonce,
                    account=first.account,
                    blocks=[c.block for c in cl],
                    expected=1,
                    seen=len(cl),
                )
            lk = locks.get(nonce)
            if not lk:
                found.add(
                    f"block {first.block}: L2 credit of {first.amount} to account "
                    f"{first.account} (nonce {nonce}) has no L1 lock",
                    nonce=nonce,
                    **first._asdict(),
                )
                continue
            lock = lk[0]
            if lock.account != first.account or lock.amount != first.amount:
                found.add(
                    f"block {first.block}: L2 credit (nonce {nonce}) does not match its L1 lock",
                    nonce=nonce,
                    block=first.block,
                    expected={"account": lock.account, "amount": lock.amount},
                    seen={"account": first.account, "amount": first.amount},
                )
        for nonce, rl in releases.items():
            if len(rl) > 1:
                found.add(
                    f"withdrawal nonce {nonce} was released {len(rl)} times on L1",
                    nonce=nonce,
                    expected=1,
                    seen=len(rl),
                )
            wd = withdrawals.get(nonce)
            rel = rl[0]
            if not wd:
                found.add(
                    f"L1 release of {rel.amount} to account {rel.account} "
                    f"(nonce {nonce}) has no canonical L2 withdrawal",
                    nonce=nonce,
                    account=rel.account,
                    amount=rel.amount,
                    host_ts_ns=rel.host_ts_ns,
                )
                continue
            w = wd[0]
            if rel.account != w.account or rel.amount != w.amount:
                found.add(
                    f"L1 release (nonce {nonce}) does not match its L2 withdrawal",
                    nonce=nonce,
                    block=w.block,
                    expected={"account": w.account, "amount": w.amount},
                    seen={"account": rel.account, "amount": rel.amount},
                )
        for nonce, wl in withdrawals.items():
            if len(wl) > 1:
                found.add(
                    f"withdrawal nonce {nonce} appears {len(wl)} times in the canonical chain",
                    nonce=nonce,
                    blocks=[w.block for w in wl],
                )
        pending_dep = sum(rows[0].amount or 0 for n, rows in locks.items() if n not in credits)
        pending_wd = sum(wl[0].amount for n, wl in withdrawals.items() if n not in releases)
        expected = n_total + pending_dep + pending_wd
        if escrow != expected:
            found.add(
                "at the end: L1 escrow != N + pending deposits + pending withdrawals",
                expected=expected,
                seen=escrow,
                n=n_total,
                pending_deposits=pending_dep,
                pending_withdrawals=pending_wd,
            )
        reported = None
        state = record.bridge_state()
        if state is not None:
            reported = state.escrow_balance
            if reported != escrow:
                found.add(
                    "the bridge reports an escrow balance that differs from its L1 ledger",
                    expected=escrow,
                    seen=reported,
                )
        return {
            "checked": {
                "bridge_credits": sum(len(v) for v in credits.values()),
                "bridge_releases": sum(len(v) for v in releases.values()),
            },
            "escrow": escrow,
            "escrow_reported": reported,
            "pending_deposits": pending_dep,
            "pending_withdrawals": pending_wd,
        }
