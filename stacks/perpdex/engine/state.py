"""Account and market state, the ledger record of one event, and the market-data cache."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from l2chaos.stacks.perpdex.markets import MARKET_NAMES

__all__ = [
    "Account",
    "Event",
    "LedgerDelta",
    "MarketCache",
    "MarketData",
    "Position",
]


@dataclass(slots=True)
class Position:
    size: int  # signed base quanta; never 0 while stored
    cached_index: int  # the funding index this position last settled at


@dataclass(slots=True)
class Account:
    id: int
    cash: int = 0  # quote quanta (the dust account: micro-quanta)
    positions: dict[str, Position] = field(default_factory=dict)
    # remaining size of open orders per market, for initial margin
    open_buy: dict[str, int] = field(default_factory=dict)
    open_sell: dict[str, int] = field(default_factory=dict)
    orders: set[int] = field(default_factory=set)

    def size(self, market: str) -> int:
        p = self.positions.get(market)
        return p.size if p is not None else 0

    def is_empty(self) -> bool:
        return self.cash == 0 and not self.positions

    def positions_json(self) -> dict[str, list[int]]:
        return {m: [p.size, p.cached_index] for m, p in sorted(self.positions.items())}

    def snapshot(self) -> dict[str, Any]:
        return {"cash": self.cash, "positions": self.positions_json()}


@dataclass(frozen=True, slots=True)
class MarketData:
    """What the sequencer knows about one market's prices and funding.

    A market the cache holds no row for reads as all zeros: the state of a market that
    was listed but never priced.
    """

    market: str
    index_price: int = 0
    index_ts_ns: int = 0  # the oracle's observed_ts_ns of the index
    mark_price: int = 0
    funding_index: int = 0
    funding_ts_ns: int = 0  # chain time funding last accrued to

    def with_(self, **changes: int) -> MarketData:
        return replace(self, **changes)  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class MarketCache:
    """The sequencer's in-memory market data, loaded from the database.

    `invalidate` drops every row (the database may have changed under it); `load`
    fills it again. Until then `get` answers the zero row of an unpriced market.
    """

    def __init__(self) -> None:
        self._rows: dict[str, MarketData] = {}
        self.loaded = False
        self.epoch = 0  # bumped on every invalidation

    def get(self, market: str) -> MarketData:
        row = self._rows.get(market)
        return row if row is not None else MarketData(market)

    def put(self, row: MarketData) -> None:
        self._rows[row.market] = row

    def invalidate(self) -> None:
        self._rows = {}
        self.loaded = False
        self.epoch += 1

    def load(self, rows: Iterable[MarketData]) -> None:
        self._rows = {r.market: r for r in rows}
        self.loaded = True

    def view(self) -> dict[str, MarketData]:
        """Every market as a block sees it right now."""
        return {m: self.get(m) for m in MARKET_NAMES}


@dataclass(slots=True)
class LedgerDelta:
    """The money and position movements of one event, exactly as replayed by checkers.

    cash: [[account, delta]] in quote quanta (never the dust account);
    pos: [[account, market, size_after, cached_index_after]];
    dust_micro: the change of the dust account, in micro-quanta.
    """

    cash: list[list[int]] = field(default_factory=list)
    pos: list[list[Any]] = field(default_factory=list)
    dust_micro: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"cash": self.cash, "pos": self.pos, "dust_micro": self.dust_micro}


@dataclass(slots=True)
class Event:
    seq: int
    kind: str
    data: dict[str, Any]
    tx: str | None = None
    ledger: LedgerDelta | None = None
    account: int | None = None  # the main account concerned, for indexing

    def to_json(self, block: Mapping[str, int]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "seq": self.seq,
            "block": block["number"],
            "block_seq": block["seq"],
            "host_ts_ns": block["host_ts_ns"],
            "chain_ts_ns": block["chain_ts_ns"],
            "kind": self.kind,
            "tx": self.tx,
            "data": self.data,
        }
        if self.ledger is not None:
            out["ledger"] = self.ledger.to_json()
        return out
