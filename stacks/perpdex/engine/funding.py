"""Funding index and mark price.

On every price update a market's funding index grows by
ΔI = clamp(mark - index, ±0.5%·index) * 1e6 * dt / 8h (floor), using the mark and index
in force since the previous update and dt in chain time. Positions settle lazily
against the index, so funding is zero-sum by construction.
"""

from __future__ import annotations

__all__ = ["FUNDING_PERIOD_NS", "PREMIUM_CAP_BPS", "funding_delta", "mark_price", "premium"]

FUNDING_PERIOD_NS = 8 * 3600 * 1_000_000_000
PREMIUM_CAP_BPS = 50  # ±0.5% of the index
_FUNDING_SCALE = 1_000_000


def premium(mark: int, index: int) -> int:
    cap = abs(index) * PREMIUM_CAP_BPS // 10_000
    return max(-cap, min(cap, mark - index))


def funding_delta(mark: int, index: int, dt_ns: int) -> int:
    """Index growth over `dt_ns` of chain time (negative dt counts as none)."""
    if dt_ns <= 0:
        return 0
    return premium(mark, index) * _FUNDING_SCALE * dt_ns // FUNDING_PERIOD_NS


def mark_price(
    index: int, best_bid: int | None, best_ask: int | None, bound_bps: int | None = None
) -> int:
    """median(index, best bid, best ask); a missing side counts as the index. With
    `bound_bps` the mark stays within ±bound_bps of the index (floor/ceil), so a stale
    or thin book cannot drag liquidation prices away from the oracle."""
    bid = index if best_bid is None else best_bid
    ask = index if best_ask is None else best_ask
    mark = sorted((index, bid, ask))[1]
    if bound_bps is None:
        return mark
    lo = index - index * bound_bps // 10_000
    hi = index + index * bound_bps // 10_000
    return max(lo, min(hi, mark))
