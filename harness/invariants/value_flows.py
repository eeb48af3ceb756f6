"""value_flows: every fill, liquidation and insurance move recomputed from the stack's
documented rules: who pays, who receives, how much, rounded which way.

fund_conservation proves the sums; this proves the routing. From audit/events.jsonl
(canonical blocks, `seq` order), the accounts replayed from the ledgers, the market
parameters and `formulas` of the audit header (docs/architecture.md):

- `fill`: it executes at the resting (maker) order's limit price, within the taker's
  limit (when the fill names its orders, `maker_order` / `taker_order`, and their
  `order_accepted` events are in the record); maker and taker fees =
  round(size x price x bps / 1e4) with the market's
  maker/taker bps and `formulas.fee.rounding`; the buyer pays size x price plus its
  fee, the seller receives size x price less its fee, the fees account is credited
  both fees and no other account moves; the buyer's position grows and the seller's
  shrinks by the size;
- `liquidation`: the account snapshot in the event is the replayed account; it is
  filled at the market's mark (the last `price_update`); the fee is round(|size| x
  price x liquidation bps / 1e4), capped at what is left of the account's equity
  (recomputed at the marks and funding indices: cash + Σ size x mark + round(-size x
  (I - cached) / scale)) after the fees of its earlier markets; the account receives
  size x price less the fee, the liquidator vault pays size x price and takes the
  position, the insurance fund gets the fee;
- `insurance_cover`: covers min(deficit, insurance fund) of a liquidated account's
  negative cash; a deficit left is declared by `insurance_shortfall` with the amount
  left; a liquidated account is never left negative in silence.

Evidence names the event, the account and the difference in quanta. Work = fills,
liquidations and insurance events.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from l2chaos.rundir.events import Event, Ledger

from .base import Checker, Findings, NoParams, Verdict
from .formulas import Formulas, div, fee, header_formulas
from .ledger import LedgerState
from .record import AuditHeader, RunRecord
from .replay import Follower, LedgerChecker, Replayed, Step

_KINDS = ("fill", "liquidation", "insurance_cover", "insurance_shortfall")


class _Flows(Follower):
    def __init__(self, header: AuditHeader, formulas: Formulas, st: LedgerState) -> None:
        self.header = header
        self.f = formulas
        self.fees_acct = _acct(header, "fees")
        self.ins = _acct(header, "insurance")
        self.vault = _acct(header, "liquidator")
        self.scale = header.funding_index_scale
        self.st = st
        self.marks: dict[str, int] = {}
        self.funding: dict[str, int] = {}
        self.found = Findings(ValueFlows.max_violations)
        self.n = {"fills": 0, "liquidations": 0, "insurance": 0}
        # per account, within one block: fee budget left, and a deficit awaiting cover
        self.budget: dict[tuple[Any, Any], int] = {}
        self.deficit: dict[int, _Deficit] = {}
        self.limits: dict[Any, tuple[Any, Any]] = {}  # order id -> (side, limit price)
        self._size_before: dict[tuple[Any, Any], int] = {}  # of the event's positions
        self.last_bs: Any = None

    @classmethod
    def make(cls, record: RunRecord, st: LedgerState) -> Follower | str:
        known = header_formulas(record.header)
        if isinstance(known, str):
            return known
        header, formulas = known
        if formulas.fee_rounding is None or formulas.liquidation_fee_rounding is None:
            return "the audit header states no fee / liquidation formula"
        if None in (header.account(r) for r in ("fees", "insurance", "liquidator")):
            return "the audit header names no fees/insurance/liquidator account"
        return cls(header, formulas, st)

    def before(self, ev: Event, st: LedgerState) -> None:
        bs = ev.block_seq
        if bs != self.last_bs:
            self._end_block()
            self.last_bs = bs
        kind = ev.kind
        data = ev.payload
        if kind == "order_accepted" and "order_id" in data:
            self.limits[data["order_id"]] = (data.get("side"), data.get("price"))
        elif kind == "genesis" and isinstance(start := data.get("funding_index"), dict):
            self.funding.update({m: v for m, v in start.items() if isinstance(v, int)})
        elif kind == "price_update" and isinstance(market := data.get("market"), str):
            mark, index = data.get("mark_price"), data.get("funding_index")
            if isinstance(mark, int):
                self.marks[market] = mark
            if isinstance(index, int):
                self.funding[market] = index
        elif kind == "liquidation":
            self._liquidation_before(ev, data)
        elif kind == "insurance_cover":
            self._cover_before(ev, data)
        elif kind == "insurance_shortfall":
            self._shortfall(ev, data)

    def after(self, ev: Event, step: Step, st: LedgerState) -> None:
        kind = ev.kind
        if step.error is not None or kind not in ("fill", "liquidation"):
            return  # fund_conservation reports malformed ledgers
        led = ev.ledger
        self._size_before = {
            (e[0], e[1]): b[0]
            for e, b in zip((led.pos if led else None) or (), step.before, strict=True)
        }
        moved = step.delta.by_account if step.delta is not None else {}
        if kind == "fill":
            self._fill(ev, ev.payload, moved, led)
        else:
            self._liquidation_after(ev, ev.payload, moved)

    def finish(self, st: LedgerState, replayed: Replayed) -> None:
        self._end_block()

    def verdict(self, checker: Checker[Any], record: RunRecord) -> Verdict:
        return checker.verdict(
            self.n,
            self.found,
            work=sum(self.n.values()),
            what="fills, liquidations or insurance moves",
        )

    # ----------------------------------------------------------------- fills

    def _fill(
        self, ev: Event, data: dict[str, object], moved: dict[int, int], led: Ledger | None
    ) -> None:
        m, price, size = data.get("market"), data.get("price"), data.get("size")
        buyer, seller, taker = data.get("buyer"), data.get("seller"), data.get("taker")
        params = self.header.market(m) if isinstance(m, str) else None
        if not (isinstance(price, int) and isinstance(size, int) and params is not None):
            self.found.at_event(ev, f"fill {ev.seq} lacks market, price or size", seen=data)
            return
        self.n["fills"] += 1
        self._fill_price(ev, data, price)
        rnd = self.f.fee_rounding
        assert rnd is not None
        want = {
            "maker_fee": fee(size, price, int(params.get("maker_fee_bps", 0)), rnd),
            "taker_fee": fee(size, price, int(params.get("taker_fee_bps", 0)), rnd),
        }
        for k, v in want.items():
            if data.get(k) != v:
                self.found.at_event(
                    ev,
                    f"block {ev.block}: fill {ev.seq} on {m} charged {k} "
                    f"{data.get(k)}, size x price x bps rounded {rnd} is {v}",
                    account=taker if k == "taker_fee" else data.get("maker"),
                    market=m,
                    expected=v,
                    seen=data.get(k),
                    difference=_diff(data.get(k), v),
                )
        fee_b = want["taker_fee"] if taker == buyer else want["maker_fee"]
        fee_s = want["taker_fee"] if taker == seller else want["maker_fee"]
        notional = size * price
        expected: dict[Any, int] = {}
        for acct, v in ((buyer, -notional - fee_b), (seller, notional - fee_s),
                        (self.fees_acct, fee_b + fee_s)):  # fmt: skip
            expected[acct] = expected.get(acct, 0) + v
        self._transfers(ev, f"fill on {m}", expected, moved)
        for acct, delta in ((buyer, size), (seller, -size)):
            self._size_change(ev, led, acct, m, delta)

    def _fill_price(self, ev: Event, data: dict[str, object], price: int) -> None:
        _, maker_limit = self.limits.get(data.get("maker_order"), (None, None))
        if isinstance(maker_limit, int) and price != maker_limit:
            self.found.at_event(
                ev,
                f"block {ev.block}: fill {ev.seq} executed at {price}, the "
                f"resting order {data.get('maker_order')} was at {maker_limit}",
                account=data.get("maker"), expected=maker_limit, seen=price,
                difference=price - maker_limit,
            )  # fmt: skip
        side, limit = self.limits.get(data.get("taker_order"), (None, None))
        if isinstance(limit, int) and (
            (side == "buy" and price > limit) or (side == "sell" and price < limit)
        ):
            self.found.at_event(
                ev,
                f"block {ev.block}: fill {ev.seq} executed at {price}, beyond "
                f"the taker's {side} limit {limit}",
                account=data.get("taker"), expected=limit, seen=price, difference=price - limit,
            )  # fmt: skip

    def _size_change(
        self, ev: Event, led: Ledger | None, acct: object, m: object, delta: int
    ) -> None:
        pos = led.pos if led is not None else None
        entries = [e for e in pos or () if e[0] == acct and e[1] == m]
        if not entries:
            self.found.at_event(
                ev,
                f"{ev.kind} {ev.seq} does not record account {acct}'s {m} position",
                account=acct,
                market=m,
            )
            return
        after = entries[-1][2]
        before = self._size_before.get((acct, m), 0)
        if after - before != delta:
            self.found.at_event(
                ev,
                f"block {ev.block}: {ev.kind} {ev.seq} changed account "
                f"{acct}'s {m} position by {after - before}, the event says {delta}",
                account=acct,
                market=m,
                expected=delta,
                seen=after - before,
                difference=after - before - delta,
            )

    # ----------------------------------------------------------- liquidations

    def _liquidation_before(self, ev: Event, data: dict[str, object]) -> None:
        acct = data.get("account")
        if not isinstance(acct, int):
            return
        key = (ev.block_seq, acct)
        if key not in self.budget:
            # first market of this liquidation: its snapshot (taken before its positions
            # settled funding) settled forward must be the replayed account
            self._snapshot(ev, data, acct)
            self.budget[key] = max(0, self._equity(acct))

    def _snapshot(self, ev: Event, data: dict[str, object], acct: int) -> None:
        rnd = self.f.settlement_rounding or "floor"
        raw = data.get("positions")
        snap = {
            k: (p[0], p[1])
            for k, p in (raw.items() if isinstance(raw, dict) else ())
            if isinstance(p, (list, tuple)) and len(p) >= 2 and p[0] != 0
        }
        now = self.st.account_positions(acct)
        cash = data.get("cash")
        if isinstance(cash, int) and {k: p[0] for k, p in snap.items()} == {
            k: p[0] for k, p in now.items()
        }:
            for k, (size, cached) in snap.items():
                cash += div(-size * (now[k][1] - cached), self.scale, rnd)
            if cash == self.st.account_cash(acct):
                return
        self.found.at_event(
            ev,
            f"block {ev.block}: liquidation of account {acct} judged a snapshot "
            "that differs from the replayed account",
            account=acct,
            expected={"cash": self.st.account_cash(acct), "positions": now},
            seen={"cash": data.get("cash"), "positions": snap, "settled_forward_cash": cash},
        )

    def _equity(self, acct: int) -> int:
        rnd = self.f.settlement_rounding or "floor"
        e = self.st.account_cash(acct)
        for m, (s, c) in self.st.account_positions(acct).items():
            e += s * self.marks.get(m, 0) + div(-s * (self.funding.get(m, c) - c), self.scale, rnd)
        return e

    def _liquidation_after(self, ev: Event, data: dict[str, object], moved: dict[int, int]) -> None:
        acct, m, size, price = (data.get(k) for k in ("account", "market", "size", "price"))
        params = self.header.market(m) if isinstance(m, str) else None
        if not (
            isinstance(acct, int) and isinstance(size, int) and isinstance(price, int) and params
        ):
            self.found.at_event(
                ev, f"liquidation {ev.seq} lacks account, market, size or price", seen=data
            )
            return
        self.n["liquidations"] += 1
        mark = self.marks.get(str(m))
        if mark is not None and price != mark:
            self.found.at_event(
                ev,
                f"block {ev.block}: account {acct} was liquidated on {m} at {price}, "
                f"the market's mark is {mark}",
                account=acct,
                market=m,
                expected=mark,
                seen=price,
                difference=price - mark,
            )
        key = (ev.block_seq, acct)
        budget = self.budget.get(key, 0)
        rnd = self.f.liquidation_fee_rounding
        assert rnd is not None
        want_fee = min(fee(size, price, int(params.get("liquidation_fee_bps", 0)), rnd), budget)
        self.budget[key] = budget - want_fee
        if data.get("fee") != want_fee:
            self.found.at_event(
                ev,
                f"block {ev.block}: liquidation of account {acct} on {m} charged a fee of "
                f"{data.get('fee')}, expected {want_fee} (|size| x price x bps rounded {rnd}, "
                f"capped at the equity left: {budget})",
                account=acct,
                market=m,
                expected=want_fee,
                seen=data.get("fee"),
                difference=_diff(data.get("fee"), want_fee),
            )
        notional = size * price
        expected = {acct: notional - want_fee, self.vault: -notional, self.ins: want_fee}
        self._transfers(ev, f"liquidation of account {acct} on {m}", expected, moved)
        after = self.st.positions.get(acct, {}).get(str(m), (0, 0))[0]
        if after != 0:
            self.found.at_event(
                ev,
                f"liquidation left account {acct} with a {m} position of {after}",
                account=acct,
                market=m,
                expected=0,
                seen=after,
            )
        v_before = self._size_before.get((self.vault, m), 0)
        v_after = self.st.positions.get(self.vault, {}).get(str(m), (0, 0))[0]
        if v_after - v_before != size:
            self.found.at_event(
                ev,
                f"block {ev.block}: the liquidator vault took {v_after - v_before} of "
                f"account {acct}'s {m} position {size}",
                account=self.vault,
                market=m,
                expected=size,
                seen=v_after - v_before,
                difference=v_after - v_before - size,
            )
        cash = self.st.account_cash(acct)
        if cash < 0:
            self.deficit[acct] = _Deficit(ev.seq, ev.block, -cash)
        else:
            self.deficit.pop(acct, None)

    # -------------------------------------------------------------- insurance

    def _cover_before(self, ev: Event, data: dict[str, object]) -> None:
        acct = data.get("account")
        self.n["insurance"] += 1
        deficit = -self.st.account_cash(acct) if isinstance(acct, int) else None
        want = None if deficit is None else min(deficit, max(0, self.st.account_cash(self.ins)))
        if data.get("deficit") != deficit or data.get("covered") != want:
            self.found.at_event(
                ev,
                f"block {ev.block}: insurance cover of account {acct} says deficit "
                f"{data.get('deficit')}, covered {data.get('covered')}; the replay gives "
                f"{deficit}, min(deficit, insurance fund) {want}",
                account=acct,
                expected={"deficit": deficit, "covered": want},
                seen={"deficit": data.get("deficit"), "covered": data.get("covered")},
            )
        moved: dict[Any, int] = {}
        for a, v in (ev.ledger.cash if ev.ledger is not None else None) or ():
            moved[a] = moved.get(a, 0) + v
        if want is not None:
            self._transfers(
                ev, f"insurance cover of account {acct}", {self.ins: -want, acct: want}, moved
            )
        if want is not None and deficit is not None and want >= deficit and isinstance(acct, int):
            self.deficit.pop(acct, None)

    def _shortfall(self, ev: Event, data: dict[str, object]) -> None:
        acct = data.get("account")
        self.n["insurance"] += 1
        left = -self.st.account_cash(acct) if isinstance(acct, int) else None
        if data.get("amount") != left:
            self.found.at_event(
                ev,
                f"block {ev.block}: insurance shortfall for account {acct} declares "
                f"{data.get('amount')}, the account is short {left}",
                account=acct,
                expected=left,
                seen=data.get("amount"),
                difference=_diff(data.get("amount"), left),
            )
        if isinstance(acct, int):
            self.deficit.pop(acct, None)

    def _end_block(self) -> None:
        for acct, d in sorted(self.deficit.items()):
            self.found.add(
                f"block {d.block}: the liquidation of account {acct} left it {d.deficit} "
                "negative with neither an insurance cover nor a declared shortfall",
                account=acct,
                event_seq=d.event_seq,
                block=d.block,
                expected=0,
                seen=-d.deficit,
            )
        self.deficit.clear()
        self.budget.clear()

    # ----------------------------------------------------------------- common

    def _transfers(
        self, ev: Event, what: str, expected: dict[Any, int], moved: dict[Any, int]
    ) -> None:
        if expected == moved:
            return
        for acct in sorted(set(expected) | set(moved), key=str):
            want, got = expected.get(acct, 0), moved.get(acct, 0)
            if want != got:
                self.found.at_event(
                    ev,
                    f"block {ev.block}: {what}: account {acct} moved {got}, expected "
                    f"{want}"
                    + ("" if acct in expected else " (an account the event does not name)"),
                    account=acct,
                    expected=want,
                    seen=got,
                    difference=got - want,
                )


class _Deficit(NamedTuple):
    """A liquidated account left negative, awaiting an insurance cover in its block."""

    event_seq: int | None
    block: int | None
    deficit: int


def _acct(header: AuditHeader, role: str) -> int:
    a = header.account(role)
    assert a is not None  # _Flows.make tested it
    return a


def _diff(seen: Any, want: Any) -> Any:
    return seen - want if isinstance(seen, int) and isinstance(want, int) else None


class ValueFlows(LedgerChecker[NoParams]):
    name = "value_flows"
    summary = (
        "Each fill's fees, each liquidation's price, fee and transfers and each insurance "
        "cover are recomputed from the documented rules and credited to the right accounts."
    )
    follower = _Flows.make
