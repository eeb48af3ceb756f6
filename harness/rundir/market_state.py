"""audit/market_state.jsonl: the market data the stack persisted, one line per block and
market where it changed (docs/architecture.md, "Audit export"). Prices in quote quanta
per base quantum, the funding index scaled by the header's `funding_index_scale`.
"""

from __future__ import annotations

from .in_block import InBlock

__all__ = ["MARKET_STATE", "MarketRow"]

MARKET_STATE = "audit/market_state.jsonl"


class MarketRow(InBlock, gc=False):
    """A market after a block. `funding_ts_ns` (the funding accrual time) is perpdex's."""

    market: str | None = None
    index_price: int | None = None
    mark_price: int | None = None
    funding_index: int | None = None
    index_ts_ns: int | None = None
    funding_ts_ns: int | None = None
