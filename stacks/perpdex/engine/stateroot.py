"""State root, tx root and block hash, as pinned in docs/architecture.md.

leaf(a) = sha256("{a}|{cash}|" + ";".join("{m}:{size}:{cached_index}" for markets m in
sorted order with size != 0)); root = sha256 of the concatenated raw 32-byte leaf
digests of every account with nonzero state, sorted by account id (numerically, so
system accounts -4..-1 come first); the dust account's cash is in micro-quanta.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "GENESIS_PARENT",
    "StateRoot",
    "block_hash",
    "leaf",
    "state_root",
    "tx_root",
]

GENESIS_PARENT = "0x" + "00" * 32


def leaf(account: int, cash: int, positions: Mapping[str, Sequence[int]]) -> bytes:
    parts = ";".join(f"{m}:{sc[0]}:{sc[1]}" for m, sc in sorted(positions.items()) if sc[0] != 0)
    return hashlib.sha256(f"{account}|{cash}|{parts}".encode()).digest()


def _nonzero(cash: int, positions: Mapping[str, Sequence[int]]) -> bool:
    return cash != 0 or any(sc[0] != 0 for sc in positions.values())


def state_root(accounts: Iterable[tuple[int, int, Mapping[str, Sequence[int]]]]) -> str:
    """Root over (account, cash, {market: [size, cached_index]}) from scratch."""
    leaves = sorted((a, leaf(a, c, p)) for a, c, p in accounts if _nonzero(c, p))
    return "0x" + hashlib.sha256(b"".join(d for _, d in leaves)).hexdigest()


class StateRoot:
    """The root maintained incrementally: only touched accounts are re-hashed."""

    def __init__(self) -> None:
        self._leaves: dict[int, bytes] = {}
        self._order: list[int] | None = None

    def update(self, account: int, cash: int, positions: Mapping[str, Sequence[int]]) -> None:
        if _nonzero(cash, positions):
            if account not in self._leaves:
                self._order = None
            self._leaves[account] = leaf(account, cash, positions)
        elif account in self._leaves:
            del self._leaves[account]
            self._order = None

    def clear(self) -> None:
        self._leaves.clear()
        self._order = None

    def root(self) -> str:
        if self._order is None:
            self._order = sorted(self._leaves)
        leaves = self._leaves
        return "0x" + hashlib.sha256(b"".join(leaves[a] for a in self._order)).hexdigest()


def tx_root(hashes: Iterable[str]) -> str:
    return "0x" + hashlib.sha256(b"".join(bytes.fromhex(h[2:]) for h in hashes)).hexdigest()


def block_hash(
    number: int, parent_hash: str, state_root: str, tx_root: str, chain_ts_ns: int
) -> str:
    text = f"{number}|{parent_hash}|{state_root}|{tx_root}|{chain_ts_ns}"
    return "0x" + hashlib.sha256(text.encode()).hexdigest()
