"""audit/transactions.jsonl: every transaction the stack put in a block, accepted or
rejected (docs/architecture.md, "Audit export"). acknowledged_writes_durable joins the
history's writes to it by hash; deposits_settle reads the deposits the chain refused.
"""

from __future__ import annotations

import msgspec

__all__ = ["TRANSACTIONS", "Transaction"]

TRANSACTIONS = "audit/transactions.jsonl"


class Transaction(msgspec.Struct, gc=False):
    """`status` is accepted or rejected (`reason` says why). A deposit carries the
    bridge message's `nonce`: the reference stack writes it as text (its column is
    text), the L1 log as a number; `deposit_nonce` is the number both mean."""

    hash: str | None = None
    block: int | None = None
    block_seq: int | None = None
    kind: str | None = None
    account: int | None = None
    status: str | None = None
    reason: str | None = None
    nonce: int | str | None = None

    @property
    def deposit_nonce(self) -> int | None:
        """`nonce` as the bridge's L1 log writes it (a number); None without one."""
        n = self.nonce
        if n is None or isinstance(n, int):
            return n
        try:
            return int(n)
        except ValueError:
            return None
