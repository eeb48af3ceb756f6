"""market_data_matches_oracle: the market data a stack persists (what a reload or a
rollback reads back, and what it publishes) is never zero once a market is priced, and
its index lies within `band` of the oracle's reference price at the time the index was
observed. The mark is held to being positive only: it follows the book (perpdex: the
median of index, best bid and best ask), and after a crash and rebound a stale book
legitimately keeps it several percent off the oracle for a while.

From audit/market_state.jsonl (persisted rows of canonical blocks) and
audit/oracle_reference.jsonl (the oracle's model price per tick, host clock). A row
before the market's first positive index is a listed but unpriced market and is not
judged. The reference is the model price of the latest tick at or before the row's
`index_ts_ns` (the oracle's observed time of that index: a lagged feed is compared
with the price of its own moment, a zero or spiked one is not). Work = rows of priced
markets.
"""

from __future__ import annotations

from fractions import Fraction
from typing import ClassVar

from l2chaos.params import Ratio, param, params

from .base import Checker, Verdict
from .record import AUDIT, RunRecord


@params
class MarketDataParams:
    band: Ratio = param(0.05, "largest relative distance of the index from the reference")


class MarketDataMatchesOracle(Checker[MarketDataParams]):
    name = "market_data_matches_oracle"
    summary = (
        "Persisted index and mark prices are never zero once a market is priced, and the "
        "index stays within a band of the oracle's reference at the time it was observed."
    )
    needs: ClassVar[tuple[str, ...]] = (AUDIT.MARKET_STATE, AUDIT.ORACLE)

    def check(self, record: RunRecord) -> Verdict:
        refs = record.reference_prices()
        if refs is None or refs.ticks == 0:
            return self.not_applicable("the oracle's reference log has no ticks")
        band = Fraction(str(self.p.band))
        canonical = record.canonical_seqs()
        found = self.findings()
        priced: set[str] = set()
        checked = work = 0
        for row in record.market_state():
            bs, m = row.block_seq, row.market
            if m is None or (canonical is not None and bs not in canonical):
                continue
            index, mark, ts = row.index_price, row.mark_price, row.index_ts_ns
            if m not in priced:
                if not (index is not None and index > 0):
                    continue
                priced.add(m)
            work += 1
            where = {"block": row.block, "block_seq": bs, "market": m}
            if not (index is not None and mark is not None and index > 0 and mark > 0):
                found.add(
                    f"block {row.block}: {m} was persisted with index {index} and mark "
                    f"{mark} after it had been priced (market data is never zero)",
                    **where,
                    seen={"index_price": index, "mark_price": mark},
                    expected="> 0",
                )
                continue
            at = refs.at(m, ts) if ts is not None else None
            if at is None:
                continue
            checked += 1
            ref, ref_t = at
            for what, v in (("index", index),):
                if abs(v - ref) > band * ref:
                    found.add(
                        f"block {row.block}: the persisted {what} price of {m} is {v}, "
                        f"{float(Fraction(v - ref, ref)):+.2%} from the oracle's reference {ref}",
                        **where,
                        price=what,
                        expected=ref,
                        seen=v,
                        difference=v - ref,
                        reference_t_ns=ref_t,
                        index_ts_ns=ts,
                    )
        return self.verdict(
            {"rows": checked}, found, work=work, what="persisted rows of priced markets"
        )
