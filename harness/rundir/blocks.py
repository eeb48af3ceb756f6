"""audit/blocks.jsonl: every block the stack produced, in production order, including
blocks a rollback orphaned later (docs/architecture.md, "Audit export").

chain_consistency checks each block's hash and links; the canonical set, the coverage
and the report's height series read it too. A field the stack left out is None here
(chain_consistency counts such a block as malformed); a field of the wrong type is a
`RecordError` naming the file and line.
"""

from __future__ import annotations

import msgspec

__all__ = ["BLOCKS", "AuditBlock"]

BLOCKS = "audit/blocks.jsonl"


class AuditBlock(msgspec.Struct, gc=False):
    """`seq` is unique and increasing; `number` restarts at N+1 after a rollback to N."""

    seq: int | None = None
    number: int | None = None
    hash: str | None = None
    parent_hash: str | None = None
    state_root: str | None = None
    tx_root: str | None = None
    chain_ts_ns: int | None = None
    host_ts_ns: int | None = None
    canonical: bool = True
    mode: str | None = None
