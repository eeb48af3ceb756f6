"""no_trades_outside_band: no fill (and no liquidation, and no accepted limit order)
lies outside ±`band` of the oracle's reference price while the exchange is post-only or
cancel-only, or recovering from it (`after_reopen` after it returned to normal).

The January 2026 incident's second wave: in the brief post-only period after the
restart, orders far from the fair price moved the mark and caused liquidations. The
trading mode comes from `mode_change` events (per market, or every market when
`market` is null) and from the `mode` a fill or order reports; the reference price is
the oracle's model price at the event's host time (audit/oracle_reference.jsonl). With
`in_fault_windows: true` every fault window counts as a guarded period too.
Work = fills, liquidations and accepted orders in guarded periods.
"""

from __future__ import annotations

from fractions import Fraction
from typing import ClassVar

from l2chaos.params import Duration, Ratio, param, params

from .base import Checker, Verdict
from .record import AUDIT, RunRecord

_KINDS = ("mode_change", "fill", "liquidation", "order_accepted")


@params
class BandParams:
    band: Ratio = param(0.05, "allowed distance from the reference price")
    modes: tuple[str, ...] = param(
        ("post_only", "cancel_only"), "trading modes in which the band applies"
    )
    after_reopen: Duration = param(
        Duration.of(s=10),
        "how long after returning to normal the band still applies",
        min=Duration(0),
    )
    in_fault_windows: bool = param(False, "treat every fault window as a guarded period too")


class NoTradesOutsideBand(Checker[BandParams]):
    name = "no_trades_outside_band"
    summary = (
        "No fill, liquidation or accepted order outside the price band while the "
        "exchange is post-only / cancel-only or recovering from it."
    )
    needs: ClassVar[tuple[str, ...]] = (AUDIT.EVENTS, AUDIT.ORACLE)

    def check(self, record: RunRecord) -> Verdict:
        ref = record.reference_prices()
        if ref is None:
            return self.not_applicable("audit/oracle_reference.jsonl is missing")
        band = Fraction(str(self.p.band))
        modes = set(self.p.modes)
        after = self.p.after_reopen.ns
        fault_windows = (
            [(s, e) for _, s, e in record.fault_windows()] if self.p.in_fault_windows else []
        )
        canonical = record.canonical_seqs()
        found = self.findings()
        global_mode = "normal"
        market_mode: dict[object, str] = {}
        left_at: dict[object, int] = {}  # market (None: all) → when it left a guarded mode
        counts = {"fills": 0, "liquidations": 0, "orders": 0}
        work = unchecked = guarded_periods = 0
        for ev in record.events(kinds=_KINDS):
            data = ev.payload
            t = ev.host_ts_ns
            kind = ev.kind
            if kind == "mode_change":
                mode = str(data.get("mode"))
                market = data.get("market")
                before = global_mode if market is None else market_mode.get(market, global_mode)
                if isinstance(t, int) and before in modes and mode not in modes:
                    left_at[market] = t
                if mode in modes and before not in modes:
                    guarded_periods += 1
                if market is None:
                    global_mode = mode
                    market_mode.clear()
                else:
                    market_mode[str(market)] = mode
                continue
            market = data.get("market")
            if not isinstance(market, str) or not isinstance(t, int):
                continue
            mode_now = market_mode.get(market, global_mode)
            guarded = (
                mode_now in modes
                or data.get("mode") in modes
                or any(t <= lt + after for lt in (left_at.get(market), left_at.get(None)) if lt)
                or any(s <= t <= e for s, e in fault_windows)
            )
            if not guarded:
                continue
            price = data.get("price")
            if kind == "order_accepted" and price is None:
                continue  # a market order has no price of its own; its fills are checked
            work += 1
            r = ref.at(market, t)
            if r is None or not isinstance(price, int):
                unchecked += 1
                continue
            key = {"fill": "fills", "liquidation": "liquidations", "order_accepted": "orders"}[
                str(kind)
            ]
            counts[key] += 1
            reference = r[0]
            if abs(price - reference) > band * reference:
                who = data.get("account") or data.get("taker") or data.get("buyer")
                bs = ev.block_seq
                found.add(
                    f"{kind} on {market} at {price} in block {ev.block} is outside "
                    f"±{float(band):.2%} of the reference {reference} (mode {mode_now})",
                    kind=kind,
                    block=ev.block,
                    block_seq=bs,
                    event_seq=ev.seq,
                    host_ts_ns=t,
                    canonical=None if canonical is None or bs is None else bs in canonical,
                    market=market,
                    account=who,
                    mode=mode_now,
                    expected=[int(reference * (1 - band)), int(reference * (1 + band))],
                    seen=price,
                    reference=reference,
                    order_id=data.get("order_id"),
                    tx=ev.tx,
                )
        return self.verdict(
            counts,
            found,
            work=work,
            what="fills, liquidations or orders in post-only / cancel-only periods",
            details={"guarded_periods": guarded_periods, "unchecked": unchecked},
        )
