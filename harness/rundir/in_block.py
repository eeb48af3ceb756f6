"""Where an audit line stands in the chain: the block it belongs to.

The audit files that record something per block (events, transactions, balances,
market state) name that block twice: its height `block`, which repeats after a
rollback, and its `block_seq`, the `seq` of audit/blocks.jsonl, unique across
rollbacks (the canonical set is a set of `block_seq`). One base Struct holds both so
that each reader of the stamp means the same fields.
"""

from __future__ import annotations

import msgspec

__all__ = ["InBlock"]


class InBlock(msgspec.Struct, gc=False):
    """`block_seq` (unique, increasing) and `block` (the height) of the line's block."""

    block_seq: int | None = None
    block: int | None = None
