"""Orders and a price-time priority order book (one per market)."""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from l2chaos.jsonfields import fields_json

__all__ = ["Book", "Order"]


@dataclass(slots=True, eq=False)
class Order:
    id: int
    account: int
    market: str
    side: str  # "buy" | "sell"
    type: str  # "limit" | "market"
    price: int | None  # None for market orders
    size: int
    remaining: int
    post_only: bool = False
    reduce_only: bool = False
    client_id: str | None = None
    tx: str | None = None
    status: str = "open"  # open | filled | cancelled | rejected
    reason: str | None = None
    created_block_seq: int = 0

    def to_json(self) -> dict[str, Any]:
        return fields_json(self, omit=("created_block_seq",), rename={"id": "order_id"})


class _Side:
    """One side of a book: FIFO queues per price level, levels kept sorted ascending."""

    def __init__(self) -> None:
        self.levels: dict[int, deque[Order]] = {}
        self.prices: list[int] = []

    def add(self, order: Order) -> None:
        assert order.price is not None
        level = self.levels.get(order.price)
        if level is None:
            level = self.levels[order.price] = deque()
            bisect.insort(self.prices, order.price)
        level.append(order)

    def remove(self, order: Order) -> None:
        assert order.price is not None
        level = self.levels[order.price]
        level.remove(order)
        if not level:
            del self.levels[order.price]
            i = bisect.bisect_left(self.prices, order.price)
            del self.prices[i]

    def __iter__(self) -> Iterator[Order]:
        for p in self.prices:
            yield from self.levels[p]


class Book:
    def __init__(self, market: str) -> None:
        self.market = market
        self._bids = _Side()
        self._asks = _Side()

    def best_bid(self) -> int | None:
        return self._bids.prices[-1] if self._bids.prices else None

    def best_ask(self) -> int | None:
        return self._asks.prices[0] if self._asks.prices else None

    def add(self, order: Order) -> None:
        (self._bids if order.side == "buy" else self._asks).add(order)

    def remove(self, order: Order) -> None:
        (self._bids if order.side == "buy" else self._asks).remove(order)

    def best_resting(self, taker_side: str) -> Order | None:
        """The order a taker on `taker_side` would meet first (best price, oldest)."""
        if taker_side == "buy":
            p = self.best_ask()
            return self._asks.levels[p][0] if p is not None else None
        p = self.best_bid()
        return self._bids.levels[p][0] if p is not None else None

    def orders(self) -> Iterator[Order]:
        yield from self._bids
        yield from self._asks

    def depth(self, levels: int = 10) -> dict[str, list[list[int]]]:
        def agg(side: _Side, prices: list[int]) -> list[list[int]]:
            return [[p, sum(o.remaining for o in side.levels[p])] for p in prices]

        return {
            "bids": agg(self._bids, self._bids.prices[::-1][:levels]),
            "asks": agg(self._asks, self._asks.prices[:levels]),
        }
