"""audit/balances.jsonl: the stack's snapshot, per block, of every account the block
touched (docs/architecture.md, "Audit export"); fund_conservation compares each with
the replayed ledgers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .in_block import InBlock
from .jsonl import read_typed

__all__ = ["BALANCES", "Balance", "read_balances"]

BALANCES = "audit/balances.jsonl"


class Balance(InBlock, gc=False):
    """An account after a block: `cash` in quote quanta (micro-quanta for the dust
    account), `positions` market -> [size, cached funding index]."""

    account: int | None = None
    cash: int | None = None
    positions: dict[str, list[int]] | None = None


def read_balances(path: Path) -> Iterator[Balance]:
    return read_typed(path, Balance)
