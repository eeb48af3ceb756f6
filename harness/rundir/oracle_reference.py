"""audit/oracle_reference.jsonl: every tick of the oracle, with the model's (true)
price (docs/architecture.md, "Audit export"). `RunRecord.reference_prices` folds it
into the reference the market-data and liquidation checkers compare with.
"""

from __future__ import annotations

import msgspec

__all__ = ["ORACLE_REFERENCE", "OracleTick"]

ORACLE_REFERENCE = "audit/oracle_reference.jsonl"


class OracleTick(msgspec.Struct, gc=False):
    """`model_price` is the truth (computed by the oracle, never read over a link);
    `published_price` is None when the sequencer did not take the push."""

    host_ts_ns: int | None = None
    market: str | None = None
    model_price: int | None = None
    published_price: int | None = None
