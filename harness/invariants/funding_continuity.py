"""funding_continuity: every market's funding index follows the stack's documented
formula tick by tick, and every funding settlement pays exactly what it says.

From audit/events.jsonl (canonical blocks, in `seq` order), the audit header's
`formulas` (docs/architecture.md) and audit/market_state.jsonl:

- the funding index starts at the `genesis` event's value; each `price_update` must
  record I + ΔI, where ΔI is recomputed from the index, mark and accrual time in force
  before it (`formulas.funding_index`); a reset to 0 or any other jump is a violation.
  After a rollback the market data restarts from the chain's state at the rollback
  target, or from what was persisted there (a stack may restore either);
- each persisted market row (market_state.jsonl) carries the chain's funding index at
  that block: what a reload reads back is what the chain computed;
- each `funding_settlement` moves the position's cached index from its replayed value
  to the market's current index, pays floor/ceil(-S x ΔI / scale) to the account (the
  side the sign says: longs pay when the index rises) and the remainder, within
  [0, scale) micro-quanta, to the dust account;
- any other event that changes a position leaves it cached at the market's current
  index and never moves a cached index of an open position (that would skip funding).

Work = `price_update` and `funding_settlement` events (and position changes).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Any

from l2chaos.rundir.events import Event

from .base import Checker, Findings, NoParams, Verdict
from .formulas import FundingRule, div, header_formulas
from .ledger import LedgerState
from .record import RunRecord
from .replay import Follower, LedgerChecker, Replayed, Step


@dataclass
class _Market:
    index: int
    mark: int
    funding: int
    funding_ts: int


@dataclass(frozen=True)
class _Row:
    block_seq: int
    block: int | None
    index: int
    mark: int
    funding: int
    funding_ts: int | None


def persisted_rows(record: RunRecord) -> dict[str, list[_Row]]:
    """Canonical persisted market rows per market, in block order."""

    def compute() -> dict[str, list[_Row]]:
        canonical = record.canonical_seqs()
        out: dict[str, list[_Row]] = {}
        for r in record.market_state():
            bs, m, index, mark, fi = (
                r.block_seq,
                r.market,
                r.index_price,
                r.mark_price,
                r.funding_index,
            )
            if bs is None or m is None or index is None or mark is None or fi is None:
                continue
            if canonical is not None and bs not in canonical:
                continue
            out.setdefault(m, []).append(_Row(bs, r.block, index, mark, fi, r.funding_ts_ns))
        for rows in out.values():
            rows.sort(key=lambda x: x.block_seq)
        return out

    return record.memo("persisted_market_rows", compute)


class _Replay(Follower):
    def __init__(self, record: RunRecord, rule: FundingRule, rounding: str) -> None:
        assert record.header is not None
        self.rule = rule
        self.rounding = rounding
        self.scale = record.header.funding_index_scale
        self.markets: dict[str, _Market] = {}
        self.rebase: dict[str, _Market] = {}  # after a rollback: the persisted state
        self.rows = persisted_rows(record)
        self.row_i = dict.fromkeys(self.rows, 0)
        self.last_bs: int | None = None
        self.found = Findings(FundingContinuity.max_violations)
        self.n = {"price_updates": 0, "settlements": 0, "positions": 0, "persisted_rows": 0}
        self.work = 0

    @classmethod
    def make(cls, record: RunRecord, st: LedgerState) -> Follower | str:
        known = header_formulas(record.header)
        if isinstance(known, str):
            return known
        formulas = known[1]
        if formulas.funding is None or formulas.settlement_rounding is None:
            return "the audit header states no funding_index / funding_settlement formula"
        return cls(record, formulas.funding, formulas.settlement_rounding)

    # ------------------------------------------------------------------ events

    def before(self, ev: Event, st: LedgerState) -> None:
        bs = ev.block_seq
        if isinstance(bs, int) and bs != self.last_bs:
            self._compare_rows(bs)
            self.last_bs = bs
        kind = ev.kind
        if kind == "genesis":
            self._genesis(ev, ev.payload)
        elif kind == "price_update":
            self.work += 1
            self._price(ev, ev.payload)
        elif kind == "rollback":
            self._rollback(ev.payload)

    def after(self, ev: Event, step: Step, st: LedgerState) -> None:
        d = step.delta
        if d is None:
            return  # no ledger, or a malformed one (fund_conservation reports it)
        pos = (ev.ledger.pos if ev.ledger is not None else None) or []
        if ev.kind == "funding_settlement":
            self.work += 1
            self._settlement(ev, pos, step.before, d.by_account, d.dust_micro)
        else:
            self._positions(ev, pos, step.before)

    def finish(self, st: LedgerState, replayed: Replayed) -> None:
        self._compare_rows(float("inf"))

    def verdict(self, checker: Checker[Any], record: RunRecord) -> Verdict:
        return checker.verdict(
            self.n,
            self.found,
            work=self.work,
            what="price updates, funding settlements or position changes",
            details={
                "funding_index": {m: s.funding for m, s in sorted(self.markets.items())},
                "formula": {
                    "period_ns": self.rule.period_ns,
                    "premium_cap_bps": self.rule.premium_cap_bps,
                    "rounding": self.rule.rounding,
                    "settlement_rounding": self.rounding,
                },
            },
        )

    def _genesis(self, ev: Event, data: dict[str, object]) -> None:
        t = ev.chain_ts_ns
        fi = data.get("funding_index")
        if not isinstance(fi, dict) or not isinstance(t, int):
            return
        for m, v in fi.items():
            if isinstance(v, int):
                self.markets[m] = _Market(0, 0, v, t)

    def _price(self, ev: Event, data: dict[str, object]) -> None:
        m, price, mark, fi = (
            data.get(k) for k in ("market", "price", "mark_price", "funding_index")
        )
        t = ev.chain_ts_ns
        if not (isinstance(m, str) and isinstance(t, int)):
            return
        if not (isinstance(price, int) and isinstance(mark, int) and isinstance(fi, int)):
            self.found.at_event(
                ev,
                f"price_update of {m} lacks an integer price, mark_price or funding_index",
                market=m,
            )
            return
        st = self.markets.get(m)
        if st is None:  # no genesis value: this update is the baseline
            self.markets[m] = _Market(price, mark, fi, t)
            return
        self.n["price_updates"] += 1
        alt = self.rebase.pop(m, None)
        dt = t - st.funding_ts
        expected = st.funding + self.rule.delta(st.mark, st.index, dt, self.scale)
        if alt is not None and fi != expected:
            alt_dt = t - alt.funding_ts
            if fi == alt.funding + self.rule.delta(alt.mark, alt.index, alt_dt, self.scale):
                st, expected = alt, fi
                self.markets[m] = alt
        if fi != expected:
            what = "reset to 0" if fi == 0 and expected != 0 else f"is {fi}"
            self.found.at_event(
                ev,
                f"block {ev.block}: the funding index of {m} {what}; the formula gives "
                f"{expected} (index {st.index}, mark {st.mark}, dt {dt} ns from {st.funding})",
                market=m,
                expected=expected,
                seen=fi,
                difference=fi - expected,
                previous=st.funding,
                dt_ns=dt,
            )
        st.index, st.mark, st.funding = price, mark, fi
        st.funding_ts = max(st.funding_ts, t)

    def _rollback(self, data: dict[str, object]) -> None:
        """The replay of canonical events is at the target's state already; a stack may
        restore the market rows it persisted there instead: the next update may
        continue from either."""
        to_seq = data.get("to_seq")
        if not isinstance(to_seq, int):
            return
        for m, rows in self.rows.items():
            i = bisect_right([r.block_seq for r in rows], to_seq) - 1
            st = self.markets.get(m)
            if i < 0 or st is None:
                continue
            r = rows[i]
            fts = r.funding_ts if r.funding_ts is not None else st.funding_ts
            self.rebase[m] = _Market(r.index, r.mark, r.funding, fts)

    def _settlement(
        self,
        ev: Event,
        pos: list[tuple[int, str, int, int]],
        before: list[tuple[int, int]],
        cash: dict[int, int],
        dust: int,
    ) -> None:
        for (acct, m, size, idx), (old_size, cached) in zip(pos, before, strict=True):
            self.n["settlements"] += 1
            if size != old_size:
                self.found.at_event(
                    ev,
                    f"funding settlement of account {acct} on {m} changed its size",
                    account=acct,
                    market=m,
                    expected=old_size,
                    seen=size,
                )
            st = self.markets.get(m)
            if st is not None and idx != st.funding:
                self.found.at_event(
                    ev,
                    f"block {ev.block}: account {acct} settled {m} funding to index {idx}, "
                    f"but the market's funding index is {st.funding}",
                    account=acct,
                    market=m,
                    expected=st.funding,
                    seen=idx,
                    difference=idx - st.funding,
                )
            payment = -old_size * (idx - cached)
            want_cash = div(payment, self.scale, self.rounding)
            want_dust = payment - want_cash * self.scale
            got_cash = cash.get(acct, 0)
            if got_cash != want_cash:
                side = "long" if old_size > 0 else "short"
                sign = (
                    f" (the {side} {'paid' if got_cash < 0 else 'received'} funding although the "
                    f"index {'rose' if idx > cached else 'fell'})"
                    if got_cash * want_cash < 0
                    else ""
                )
                self.found.at_event(
                    ev,
                    f"block {ev.block}: funding settlement of account {acct} on {m} "
                    f"credited {got_cash}, -size x Δindex / {self.scale} rounded "
                    f"{self.rounding} is {want_cash}{sign}",
                    account=acct,
                    market=m,
                    size=old_size,
                    index_from=cached,
                    index_to=idx,
                    expected=want_cash,
                    seen=got_cash,
                    difference=got_cash - want_cash,
                )
            if dust != want_dust or not 0 <= dust < self.scale:
                self.found.at_event(
                    ev,
                    f"block {ev.block}: funding settlement of account {acct} on {m} "
                    f"sent {dust} micro-quanta to the dust account, expected {want_dust} "
                    f"(within [0, {self.scale}))",
                    account=acct,
                    market=m,
                    expected=want_dust,
                    seen=dust,
                    difference=dust - want_dust,
                )

    def _positions(
        self,
        ev: Event,
        pos: list[tuple[int, str, int, int]],
        before: list[tuple[int, int]],
    ) -> None:
        for (acct, m, size, idx), (old_size, cached) in zip(pos, before, strict=True):
            st = self.markets.get(m)
            self.n["positions"] += 1
            self.work += 1
            if old_size != 0 and idx != cached and size != 0:
                self.found.at_event(
                    ev,
                    f"block {ev.block}: {ev.kind} moved account {acct}'s cached "
                    f"funding index on {m} from {cached} to {idx} without a settlement",
                    account=acct,
                    market=m,
                    expected=cached,
                    seen=idx,
                    difference=idx - cached,
                )
            elif size != 0 and st is not None and idx != st.funding:
                self.found.at_event(
                    ev,
                    f"block {ev.block}: {ev.kind} left account {acct}'s {m} "
                    f"position cached at index {idx}, the market's funding index is {st.funding}",
                    account=acct,
                    market=m,
                    expected=st.funding,
                    seen=idx,
                    difference=idx - st.funding,
                )

    # -------------------------------------------------------------- persisted

    def _compare_rows(self, before_seq: float) -> None:
        """Persisted rows of blocks before `before_seq` against the replayed index."""
        row_i = self.row_i
        for m, rows in self.rows.items():
            i = row_i[m]
            while i < len(rows) and rows[i].block_seq < before_seq:
                r = rows[i]
                i += 1
                st = self.markets.get(m)
                if st is None:
                    continue
                self.n["persisted_rows"] += 1
                if r.funding != st.funding:
                    self.found.add(
                        f"block {r.block}: the persisted funding index of {m} is {r.funding}, "
                        f"the chain's is {st.funding} (a reload reads this row back)",
                        block=r.block,
                        block_seq=r.block_seq,
                        market=m,
                        expected=st.funding,
                        seen=r.funding,
                        difference=r.funding - st.funding,
                    )
            row_i[m] = i


class FundingContinuity(LedgerChecker[NoParams]):
    name = "funding_continuity"
    summary = (
        "Funding indices follow the documented formula tick by tick (no reset to 0 or jump "
        "without a declared rollback), persisted market rows carry them, and every funding "
        "settlement pays -size x Δindex rounded as documented, the remainder to dust."
    )
    follower = _Replay.make
