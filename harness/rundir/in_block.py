"""Where an audit line stands in the chain: the block it belongs to.

The audit files that record something per block name that block twice: its height
`block`, which repeats after a rollback, and its `block_seq`, the `seq` of
audit/blocks.jsonl, unique across rollbacks (the canonical set is a set of
`block_seq`). Balances and market state, whose lines begin with the two, share this
base. Events and transactions spell the two out in the order their lines carry them:
msgspec decodes fastest when the fields come in the line's key order, and a base puts
its fields first (that reorder cost events.jsonl 5% of its decoding speed).
"""

from __future__ import annotations

import msgspec

__all__ = ["InBlock"]


class InBlock(msgspec.Struct, gc=False):
    """`block_seq` (unique, increasing) and `block` (the height) of the line's block."""

    block_seq: int | None = None
    block: int | None = None
