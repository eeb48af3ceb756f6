"""liquidations_justified: at the oracle's reference price of that moment the account
really was below maintenance margin, and the fill price lies within `band` of it.

For each `liquidation` event the account is re-valued from the snapshot in the event
(`cash`, `positions`: size and cached funding index per market) and the market
parameters in the audit header (`mmf_bps`), never from the stack's own `equity` /
`maintenance`. Reference prices come from the oracle's model (audit/
oracle_reference.jsonl, the latest tick at or before the event's host time). The test
is lenient by `tolerance`: each position is valued at the most adverse price within
±tolerance of its reference (longs low, shorts high), and the liquidation is judged
unjustified only if even then

    equity = cash + Σ size x P  (+ accrued funding gains)  >=  Σ |size| x P x mmf

Accrued funding (-size x (I - cached) / 1e6 at the stack's index I) is counted only
where it is in the account's favour: a funding loss can come from a corrupted index
(the January 2026 incident reset funding indices to 0), so it may never be the reason
a liquidation counts as justified. Blocked attempts count as checked (nothing was
executed). Work = liquidation attempts (see `_liquidations`).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

from l2chaos.params import Ratio, param, params
from l2chaos.rundir.events import Event

from ._liquidations import LIQUIDATION_KINDS, liquidation_evidence, unrecorded_takeovers
from .base import Checker, Verdict
from .record import AUDIT, AuditHeader, ReferencePrices, RunRecord


def _floor_mul(p: int, f: Fraction) -> int:
    return (p * f.numerator) // f.denominator


def _ceil_mul(p: int, f: Fraction) -> int:
    return -((-p * f.numerator) // f.denominator)


@dataclass(frozen=True)
class Assessment:
    """The account re-valued at adverse reference prices (`prices`, per market)."""

    equity: Fraction
    maintenance: Fraction
    prices: dict[str, int]
    funding_gain: Fraction

    @property
    def below_maintenance(self) -> bool:
        return self.equity < self.maintenance


@dataclass(frozen=True)
class _Unjustified:
    message: str
    evidence: dict[str, object]


def assess(
    data: dict[str, object],
    refs: dict[str, int],
    header: AuditHeader,
    tolerance: Fraction,
) -> Assessment | None:
    """Re-value the account at the adverse reference prices. None if it cannot be done
    (snapshot or market parameters missing)."""
    cash = data.get("cash")
    positions = data.get("positions")
    if not isinstance(cash, int) or not isinstance(positions, dict):
        return None
    markets_used = data.get("markets") if isinstance(data.get("markets"), dict) else {}
    scale = header.funding_index_scale
    equity = Fraction(cash)
    maintenance = Fraction(0)
    prices: dict[str, int] = {}
    funding_gain = Fraction(0)
    for market, pos in positions.items():
        if not isinstance(pos, (list, tuple)) or len(pos) < 1 or not isinstance(pos[0], int):
            return None
        size = pos[0]
        cached = pos[1] if len(pos) > 1 and isinstance(pos[1], int) else None
        if size == 0:
            continue
        params = header.market(market)
        ref = refs.get(market)
        if params is None or ref is None or "mmf_bps" not in params:
            return None
        p = _floor_mul(ref, 1 - tolerance) if size > 0 else _ceil_mul(ref, 1 + tolerance)
        prices[market] = p
        equity += size * p
        maintenance += Fraction(abs(size) * p * int(params["mmf_bps"]), 10_000)
        used = markets_used.get(market) if isinstance(markets_used, dict) else None
        index = used.get("funding_index") if isinstance(used, dict) else None
        if isinstance(index, int) and cached is not None:
            accrued = Fraction(-size * (index - cached), scale)
            if accrued > 0:
                funding_gain += accrued
    return Assessment(equity + funding_gain, maintenance, prices, funding_gain)


@params
class JustifiedParams:
    band: Ratio = param(0.05, "allowed distance of the fill price from the reference")
    tolerance: Ratio = param(
        0.01,
        "each position is valued at the most adverse price within ±tolerance of its reference",
    )


class LiquidationsJustified(Checker[JustifiedParams]):
    name = "liquidations_justified"
    summary = (
        "At the oracle's reference price the liquidated account really was below "
        "maintenance margin, and the fill price lies within `band` of the reference."
    )
    needs: ClassVar[tuple[str, ...]] = (AUDIT.EVENTS, AUDIT.HEADER, AUDIT.ORACLE)

    def check(self, record: RunRecord) -> Verdict:
        header = record.header
        ref = record.reference_prices()
        if header is None or ref is None:
            return self.not_applicable("the audit header or the oracle reference log is missing")
        band = Fraction(str(self.p.band))
        tol = Fraction(str(self.p.tolerance))
        canonical = record.canonical_seqs()
        found = self.findings()
        executed = blocked = attempts = unchecked = 0
        for ev in record.events(kinds=LIQUIDATION_KINDS):
            attempts += 1
            if ev.kind == "liquidation_blocked":
                blocked += 1
                continue
            verdict = self._one(ev, ev.payload, header, ref, band, tol, canonical)
            if verdict is None:
                unchecked += 1
                continue
            executed += 1
            if isinstance(verdict, _Unjustified):
                found.add(verdict.message, **verdict.evidence)
        work = attempts + unrecorded_takeovers(record)
        checked = {"liquidations": executed, "blocked_attempts": blocked}
        details = {"unchecked_liquidations": unchecked} if unchecked else {}
        return self.verdict(checked, found, work=work, what="liquidation attempts", details=details)

    def _one(
        self,
        ev: Event,
        data: dict[str, object],
        header: AuditHeader,
        ref: ReferencePrices,
        band: Fraction,
        tol: Fraction,
        canonical: frozenset[int] | None,
    ) -> _Unjustified | bool | None:
        """None: cannot be checked; True: justified; else the violation."""
        t = ev.host_ts_ns
        market = data.get("market")
        price = data.get("price")
        positions = data.get("positions")
        if not isinstance(t, int) or not isinstance(market, str) or not isinstance(price, int):
            return None
        if not isinstance(positions, dict):
            return None
        refs: dict[str, int] = {}
        for m in {market, *positions}:
            r = ref.at(m, t)
            if r is None:
                return None
            refs[m] = r[0]
        a = assess(data, refs, header, tol)
        if a is None:
            return None
        problems: list[str] = []
        r_m = refs[market]
        if abs(price - r_m) > band * r_m:
            problems.append(
                f"fill price {price} is outside ±{float(band):.2%} of the reference {r_m}"
            )
        if not a.below_maintenance:
            problems.append(
                f"the account was above maintenance at reference prices "
                f"(equity {float(a.equity):.0f} >= maintenance {float(a.maintenance):.0f})"
            )
        if not problems:
            return True
        return _Unjustified(
            f"account {data.get('account')} liquidated on {market} in block {ev.block}: "
            + "; ".join(problems),
            {
                **liquidation_evidence(ev, canonical),
                "reference_prices": refs,
                "adverse_prices": a.prices,
                "expected": "below maintenance at reference prices, fill within band",
                "equity_recomputed": int(a.equity),
                "maintenance_recomputed": int(a.maintenance),
                "equity_stack": data.get("equity"),
                "maintenance_stack": data.get("maintenance"),
            },
        )
