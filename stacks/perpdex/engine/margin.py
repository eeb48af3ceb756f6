"""Margin arithmetic on exact integers: funding owed, equity, initial and maintenance
margin, liquidation price.

Equity = Q + Σ_m (S*P_mark + floor(-S*(I-c) / 1e6)): the cash the account would hold
after closing every position at the mark and settling funding (rounded down, as
settlement does). IM/MM per market = ceil(|S|*P_mark*bps / 1e4); initial margin
counts open orders as the worse of all buys or all sells filling.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction

from l2chaos.stacks.perpdex.engine.state import Account, MarketData
from l2chaos.stacks.perpdex.markets import BPS, FUNDING_SCALE, MARKETS

__all__ = [
    "equity",
    "funding_settlement",
    "initial_margin",
    "liquidation_price",
    "maintenance_margin",
    "margin_requirement",
]


def funding_settlement(size: int, cached_index: int, index: int) -> tuple[int, int]:
    """Settle a position's funding from `cached_index` to `index`.

    Returns (cash delta in quanta, rounded down; remainder in micro-quanta for the dust
    account, in [0, 1e6)). payment = -S*(I-c) micro-quanta.
    """
    payment = -size * (index - cached_index)
    cash = payment // FUNDING_SCALE
    return cash, payment - cash * FUNDING_SCALE


def margin_requirement(abs_size: int, price: int, bps: int) -> int:
    """ceil(|S|*P*bps/1e4); a non-positive price requires nothing."""
    if abs_size <= 0 or price <= 0:
        return 0
    return -((-abs_size * price * bps) // BPS)


def _funding_term(size: int, cached_index: int, index: int) -> int:
    return (-size * (index - cached_index)) // FUNDING_SCALE


def equity(acct: Account, md: Mapping[str, MarketData]) -> int:
    e = acct.cash
    for m, p in acct.positions.items():
        d = md[m]
        e += p.size * d.mark_price + _funding_term(p.size, p.cached_index, d.funding_index)
    return e


def maintenance_margin(acct: Account, md: Mapping[str, MarketData]) -> int:
    return sum(
        margin_requirement(abs(p.size), md[m].mark_price, MARKETS[m].mmf_bps)
        for m, p in acct.positions.items()
    )


def initial_margin(
    acct: Account,
    md: Mapping[str, MarketData],
    extra: tuple[str, str, int] | None = None,
) -> int:
    """IM of positions and open orders; `extra` = (market, side, size) of a new order."""
    markets = set(acct.positions) | set(acct.open_buy) | set(acct.open_sell)
    if extra is not None:
        markets.add(extra[0])
    total = 0
    for m in markets:
        size = acct.size(m)
        buy = acct.open_buy.get(m, 0)
        sell = acct.open_sell.get(m, 0)
        if extra is not None and extra[0] == m:
            if extra[1] == "buy":
                buy += extra[2]
            else:
                sell += extra[2]
        worst = max(abs(size + buy), abs(size - sell))
        total += margin_requirement(worst, md[m].mark_price, MARKETS[m].imf_bps)
    return total


def liquidation_price(acct: Account, market: str, md: Mapping[str, MarketData]) -> Fraction | None:
    """The mark price of `market` at which equity falls to maintenance margin, others fixed.

    Solves Q' + S*p = MM_other + |S|*p*mmf (cross margin, exact). None when no positive
    price liquidates the account through this market.
    """
    pos = acct.positions.get(market)
    if pos is None or pos.size == 0:
        return None
    d = md[market]
    base = Fraction(acct.cash + _funding_term(pos.size, pos.cached_index, d.funding_index))
    mm_other = Fraction(0)
    for m, p in acct.positions.items():
        if m == market:
            continue
        o = md[m]
        base += p.size * o.mark_price + _funding_term(p.size, p.cached_index, o.funding_index)
        mm_other += margin_requirement(abs(p.size), o.mark_price, MARKETS[m].mmf_bps)
    denom = Fraction(pos.size) - Fraction(abs(pos.size) * MARKETS[market].mmf_bps, BPS)
    price = (mm_other - base) / denom
    return price if price > 0 else None
