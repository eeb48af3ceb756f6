"""The value formulas a stack documents in its audit header, and their arithmetic.

A stack states how it accrues funding, settles it, charges fees and liquidates in
`header.json` → `formulas` (docs/architecture.md, "Audit export"); the value-flow
checkers recompute every event from these rules in exact integers and compare. A
header without `formulas` (or a rule the checkers do not know) makes them
`not_applicable`: they never guess a stack's arithmetic.

    "formulas": {
      "funding_index": {"on": "price_update", "period_ns": 28800000000000,
                        "premium_cap_bps": 50, "rounding": "floor"},
      "funding_settlement": {"rounding": "floor", "remainder_to": "dust"},
      "fee": {"rounding": "ceil"},
      "liquidation": {"price": "mark", "fee_rounding": "ceil", "fee_cap": "equity"}
    }

Funding index, per accepted price update of a market at chain time t (ns), with the
index price x, mark m, funding index I and accrual time T in force before it:
premium = clamp(m - x, ±floor(|x| x cap_bps / 1e4)); dt = t - T; ΔI = round(premium x
scale x dt / period) when dt > 0, else 0; then I += ΔI, T = max(T, t), and the update's
price and mark are in force. A settlement of size S from cached index c to I pays
S' = -S x (I - c) micro-quanta: round(S' / scale) to the account, the remainder (in
[0, scale) for floor) to the dust account. Fees: round(|size| x price x bps / 1e4).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .record import AuditHeader

__all__ = ["FormulaError", "Formulas", "FundingRule", "div", "fee", "premium"]

ROUNDINGS = ("floor", "ceil")


class FormulaError(ValueError):
    """The header's formulas are missing a rule or name one the checkers do not know."""


def div(num: int, den: int, rounding: str) -> int:
    """num / den rounded toward -inf (floor) or +inf (ceil); den > 0."""
    return num // den if rounding == "floor" else -((-num) // den)


def premium(mark: int, index: int, cap_bps: int) -> int:
    cap = abs(index) * cap_bps // 10_000
    return max(-cap, min(cap, mark - index))


@dataclass(frozen=True)
class FundingRule:
    period_ns: int
    premium_cap_bps: int
    rounding: str

    def delta(self, mark: int, index: int, dt_ns: int, scale: int) -> int:
        if dt_ns <= 0:
            return 0
        return div(
            premium(mark, index, self.premium_cap_bps) * scale * dt_ns,
            self.period_ns,
            self.rounding,
        )


def fee(size: int, price: int, bps: int, rounding: str) -> int:
    return div(abs(size) * price * bps, 10_000, rounding)


@dataclass(frozen=True)
class Formulas:
    """The rules of one header, checked for shape once."""

    funding: FundingRule | None
    settlement_rounding: str | None
    fee_rounding: str | None
    liquidation_price: str | None
    liquidation_fee_rounding: str | None
    liquidation_fee_cap: str | None

    @classmethod
    def from_header(cls, raw: object) -> Formulas:
        f = raw if isinstance(raw, Mapping) else {}
        fi, fs, fe, lq = (
            _rule(f, "funding_index"),
            _rule(f, "funding_settlement"),
            _rule(f, "fee"),
            _rule(f, "liquidation"),
        )
        funding = None
        if fi is not None:
            if fi.get("on") != "price_update":
                raise FormulaError(f"funding_index.on: {fi.get('on')!r} (known: price_update)")
            funding = FundingRule(
                period_ns=_pos_int(fi, "period_ns"),
                premium_cap_bps=_pos_int(fi, "premium_cap_bps"),
                rounding=_rounding(fi, "rounding"),
            )
        if lq is not None and lq.get("price") not in ("mark",):
            raise FormulaError(f"liquidation.price: {lq.get('price')!r} (known: mark)")
        if lq is not None and lq.get("fee_cap") not in ("equity", None):
            raise FormulaError(f"liquidation.fee_cap: {lq.get('fee_cap')!r} (known: equity)")
        return cls(
            funding=funding,
            settlement_rounding=None if fs is None else _rounding(fs, "rounding"),
            fee_rounding=None if fe is None else _rounding(fe, "rounding"),
            liquidation_price=None if lq is None else "mark",
            liquidation_fee_rounding=None if lq is None else _rounding(lq, "fee_rounding"),
            liquidation_fee_cap=None if lq is None or lq.get("fee_cap") is None else "equity",
        )


def header_formulas(header: AuditHeader | None) -> tuple[AuditHeader, Formulas] | str:
    """The audit header and its formulas, or why a checker of them does not apply."""
    if header is None:
        return "audit/header.json is missing"
    try:
        return header, Formulas.from_header(header.raw.get("formulas"))
    except FormulaError as exc:
        return f"audit header formulas: {exc}"


def _rule(f: Mapping[str, object], name: str) -> Mapping[str, object] | None:
    r = f.get(name)
    if r is None:
        return None
    if not isinstance(r, Mapping):
        raise FormulaError(f"{name}: expected an object, got {r!r}")
    return r


def _rounding(r: Mapping[str, object], key: str) -> str:
    v = r.get(key)
    if v not in ROUNDINGS:
        raise FormulaError(f"{key}: {v!r} (known: {', '.join(ROUNDINGS)})")
    return str(v)


def _pos_int(r: Mapping[str, object], key: str) -> int:
    v = r.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise FormulaError(f"{key}: expected a positive integer, got {v!r}")
    return v
