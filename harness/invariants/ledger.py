"""Replaying the audit export's event ledgers: accounts, totals and the state root.

Every event that moves money or positions carries a `ledger` (docs/architecture.md,
"Audit export"): cash deltas per account, positions after the event (size and cached
funding index) and a dust delta in micro-quanta. Replaying the ledgers of canonical
blocks in `seq` order reproduces every account. `LedgerState.apply` returns what one
event changed in the totals the fund-conservation identities are about, in exact
integers:

    Σ cash x 1e6 + Σ size x cached_index + dust_micro  ==  N x 1e6

(N = deposits credited - withdrawals), and Σ size per market == 0.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from l2chaos.rundir.events import Event, Ledger

__all__ = [
    "MICRO",
    "IncrementalRoot",
    "LedgerDelta",
    "LedgerError",
    "LedgerState",
    "block_hash",
    "leaf_digest",
    "state_root",
]

MICRO = 1_000_000


class LedgerError(ValueError):
    """A ledger entry has the wrong shape (a list where an int belongs, ...)."""


@dataclass(slots=True)
class LedgerDelta:
    """What one event's ledger changed."""

    cash_sum: int = 0  # Σ cash deltas of ordinary accounts, quote quanta
    sc_sum: int = 0  # change of Σ size x cached_index
    dust_micro: int = 0  # change of the dust account, micro-quanta
    by_account: dict[int, int] = field(default_factory=dict)  # cash deltas per account
    # per market its positions touched: the change of open interest (Σ size)
    oi_change: dict[str, int] = field(default_factory=dict)

    @property
    def identity_micro(self) -> int:
        """The change of Σ cashx1e6 + Σ Sxc + dust in micro-quanta."""
        return self.cash_sum * MICRO + self.sc_sum + self.dust_micro


def block_hash(
    number: int, parent_hash: str, state_root: str, tx_root: str, chain_ts_ns: int
) -> str:
    """sha256("{number}|{parent_hash}|{state_root}|{tx_root}|{chain_ts_ns}"), 0x-hex."""
    text = f"{number}|{parent_hash}|{state_root}|{tx_root}|{chain_ts_ns}"
    return "0x" + hashlib.sha256(text.encode()).hexdigest()


def leaf_digest(account: int, cash: int, positions: dict[str, tuple[int, int]]) -> bytes:
    """sha256("{a}|{cash}|" + ";".join("{m}:{size}:{cached}" for markets m sorted,
    size != 0)), the raw 32-byte digest."""
    body = ";".join(
        f"{m}:{size}:{cached}" for m, (size, cached) in sorted(positions.items()) if size != 0
    )
    return hashlib.sha256(f"{account}|{cash}|{body}".encode()).digest()


def state_root(leaves: dict[int, bytes]) -> str:
    """sha256 over the concatenated raw leaf digests sorted by account id, 0x-hex."""
    h = hashlib.sha256()
    for a in sorted(leaves):
        h.update(leaves[a])
    return "0x" + h.hexdigest()


def _int(v: object, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise LedgerError(f"{what}: expected an integer, got {v!r}")
    return v


def _entries(v: object) -> Iterable[object]:
    """A ledger's list of entries (absent, null or empty: none)."""
    if not v:
        return ()
    if not isinstance(v, Iterable):
        raise LedgerError(f"expected a list of entries, got {v!r}")
    return v


class LedgerState:
    """Accounts replayed from ledgers. The dust account's cash is kept in micro-quanta."""

    def __init__(self, dust_account: int | None) -> None:
        self.dust_account = dust_account
        self.cash: dict[int, int] = {}
        self.dust_micro = 0
        self.positions: dict[int, dict[str, tuple[int, int]]] = {}
        self.cash_sum = 0  # ordinary accounts, quanta
        self.sc_sum = 0
        self.open_interest: dict[str, int] = {}

    # ------------------------------------------------------------------ replay

    def apply(self, ledger: Ledger) -> LedgerDelta:
        # The hot loop of the ledger replay; the decoder has checked the types. The
        # totals are kept in locals and the delta is built once at the end.
        by: dict[int, int] = {}
        oi_change: dict[str, int] = {}
        cash_sum = sc_sum = dust_micro = 0
        cash = self.cash
        dust_acct = self.dust_account
        for acct, delta in ledger.cash or ():
            if acct == dust_acct:
                dust_micro += delta
            else:
                cash[acct] = cash.get(acct, 0) + delta
                cash_sum += delta
            by[acct] = by.get(acct, 0) + delta
        positions = self.positions
        oi = self.open_interest
        for acct, market, size, cached in ledger.pos or ():
            book = positions.get(acct)
            if book is None:
                book = positions[acct] = {}
            old_size, old_cached = book.get(market, (0, 0))
            book[market] = (size, cached)
            sc_sum += size * cached - old_size * old_cached
            oi[market] = oi.get(market, 0) + size - old_size
            oi_change[market] = oi_change.get(market, 0) + size - old_size
        if ledger.dust_micro is not None:
            dust_micro += ledger.dust_micro
        self.dust_micro += dust_micro
        self.cash_sum += cash_sum
        self.sc_sum += sc_sum
        return LedgerDelta(cash_sum, sc_sum, dust_micro, by, oi_change)

    def apply_json(self, ledger: Mapping[str, object]) -> LedgerDelta:
        """Apply a ledger object as written, checking its shape. Entries before the
        first malformed one are applied (the state moves, the totals do not), then
        LedgerError says what is wrong."""
        cash: list[tuple[int, int]] = []
        pos: list[tuple[int, str, int, int]] = []
        error: str | None = None
        try:
            for entry in _entries(ledger.get("cash")):
                if not isinstance(entry, (list, tuple)) or len(entry) != 2:
                    raise LedgerError(f"cash entry: expected [account, delta], got {entry!r}")
                cash.append((_int(entry[0], "cash account"), _int(entry[1], "cash delta")))
            for entry in _entries(ledger.get("pos")):
                if not isinstance(entry, (list, tuple)) or len(entry) != 4:
                    raise LedgerError(
                        "pos entry: expected [account, market, size_after, "
                        f"cached_index_after], got {entry!r}"
                    )
                acct, market, size, cached = entry
                acct = _int(acct, "pos account")
                size, cached = _int(size, "pos size_after"), _int(cached, "pos cached_index_after")
                if not isinstance(market, str):
                    raise LedgerError(f"pos market: expected a string, got {market!r}")
                pos.append((acct, market, size, cached))
            dust = ledger.get("dust_micro")
            dust_micro = None if dust is None else _int(dust, "dust_micro")
        except LedgerError as exc:
            error, dust_micro = str(exc), None
        d = self.apply(Ledger(cash, pos, dust_micro))
        if error is not None:
            self.cash_sum -= d.cash_sum
            self.sc_sum -= d.sc_sum
            raise LedgerError(error)
        return d

    def apply_event(self, ev: Event) -> LedgerDelta:
        """Apply an event's ledger (an empty delta when it has none); LedgerError when
        it is malformed."""
        if ev.ledger is not None:
            return self.apply(ev.ledger)
        if ev.malformed_ledger is not None:
            return self.apply_json(ev.malformed_ledger)
        return LedgerDelta()

    # ----------------------------------------------------------------- reading

    @property
    def identity_micro(self) -> int:
        """Σ cash x 1e6 + Σ S x c + dust_micro."""
        return self.cash_sum * MICRO + self.sc_sum + self.dust_micro

    def account_cash(self, acct: int) -> int:
        """Cash of an account (micro-quanta for the dust account, like the audit)."""
        if acct == self.dust_account:
            return self.dust_micro
        return self.cash.get(acct, 0)

    def account_positions(self, acct: int) -> dict[str, tuple[int, int]]:
        """Positions with a nonzero size."""
        return {m: p for m, p in self.positions.get(acct, {}).items() if p[0] != 0}

    def accounts(self) -> list[int]:
        known = set(self.cash) | set(self.positions)
        if self.dust_account is not None:
            known.add(self.dust_account)
        return sorted(known)

    def leaves(self) -> dict[int, bytes]:
        """Leaf digests of every account with nonzero state."""
        out: dict[int, bytes] = {}
        for a in self.accounts():
            cash = self.account_cash(a)
            pos = self.account_positions(a)
            if cash != 0 or pos:
                out[a] = leaf_digest(a, cash, pos)
        return out

    def state_root(self) -> str:
        return state_root(self.leaves())

    def copy(self) -> LedgerState:
        c = LedgerState(self.dust_account)
        c.cash = dict(self.cash)
        c.dust_micro = self.dust_micro
        c.positions = {a: dict(p) for a, p in self.positions.items()}
        c.cash_sum = self.cash_sum
        c.sc_sum = self.sc_sum
        c.open_interest = dict(self.open_interest)
        return c


class IncrementalRoot:
    """Keeps leaf digests up to date for touched accounts, so the root of every block
    costs re-hashing the touched accounts and one sha256 over a buffer of the sorted
    digests (kept in place: an account's digest lives at a fixed offset until an
    account is added or removed), not a Python pass over every account."""

    def __init__(self, state: LedgerState) -> None:
        self.state = state
        self._leaves: dict[int, bytes] = {}
        self._slot: dict[int, int] = {}
        self._buf = bytearray()
        self._root: str | None = None
        self.dirty: set[int] = set()

    def touch(self, accounts: set[int] | list[int]) -> None:
        self.dirty.update(accounts)

    def root(self) -> str:
        st = self.state
        leaves = self._leaves
        reorder = False
        dust, cash_of, books, sha256 = st.dust_account, st.cash, st.positions, hashlib.sha256
        for a in self.dirty:
            # leaf_digest(a, account_cash(a), account_positions(a)), inline: once per
            # touched account of every block
            cash = st.dust_micro if a == dust else cash_of.get(a, 0)
            book = books.get(a)
            body = (
                ";".join(f"{m}:{s}:{c}" for m, (s, c) in sorted(book.items()) if s != 0)
                if book
                else ""
            )
            if cash != 0 or body:
                digest = sha256(f"{a}|{cash}|{body}".encode()).digest()
                slot = self._slot.get(a)
                if slot is None:
                    reorder = True
                else:
                    self._buf[slot : slot + 32] = digest
                leaves[a] = digest
            elif a in leaves:
                del leaves[a]
                reorder = True
        if self.dirty or self._root is None:
            self.dirty.clear()
            if reorder:
                order = sorted(leaves)
                self._slot = {a: 32 * i for i, a in enumerate(order)}
                self._buf = bytearray(b"".join(leaves[a] for a in order))
            self._root = "0x" + hashlib.sha256(self._buf).hexdigest()
        return self._root
