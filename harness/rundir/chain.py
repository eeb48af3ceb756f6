"""chain/: the chain record of a stack with a `chain` probe, read through the node's
own JSON-RPC (docs/architecture.md, "chain/"; l2chaos.chainrecord writes it).
chain_consistency and acknowledged_writes_durable read it. Every field is required:
a line without one is a `RecordError` naming the file and line.
"""

from __future__ import annotations

import msgspec

__all__ = ["CHAIN_BLOCKS", "HEADS", "REORGS", "ChainBlock", "Head", "Reorg"]

HEADS = "chain/heads.jsonl"
REORGS = "chain/reorgs.jsonl"
CHAIN_BLOCKS = "chain/blocks.jsonl"


class Head(msgspec.Struct, gc=False):
    """A new head the probes saw, at host time `t_ns`."""

    t_ns: int
    number: int
    hash: str
    parent_hash: str


class Reorg(msgspec.Struct, gc=False):
    """The head stepped back or a seen block changed its hash. `common_ancestor` is None
    when deeper than the two blocks the new head names; `ancestor_at_most` is it, or the
    highest block it can be; `depth` the blocks of the old chain orphaned."""

    t_ns: int
    from_number: int
    from_hash: str
    to_number: int
    to_hash: str
    depth: int
    common_ancestor: int | None = None
    ancestor_at_most: int | None = None


class ChainBlock(msgspec.Struct, gc=False):
    """A block of the node's final canonical chain (written at wind-down)."""

    number: int
    hash: str
    parent_hash: str
    tx_hashes: list[str] = msgspec.field(default_factory=list)
