"""audit/transactions.jsonl: every transaction the stack put in a block, accepted or
rejected (docs/architecture.md, "Audit export"). acknowledged_writes_durable joins the
history's writes to it by hash; deposits_settle reads the deposits the chain refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec

from .jsonl import read_typed

__all__ = ["TRANSACTIONS", "Transaction", "read_transactions"]

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


def read_transactions(path: Path, contains: tuple[bytes, ...] = ()) -> Iterator[Transaction]:
    """Stream the log; with `contains`, lines without any of those bytes are skipped."""
    return read_typed(path, Transaction, contains)
