"""Helpers for driving the pure exchange engine block by block."""

from __future__ import annotations

from typing import Any

import pytest
from l2chaos.stacks.perpdex.engine.exchange import BlockContext, BlockOutput, Exchange, Guards
from l2chaos.stacks.perpdex.engine.state import MarketCache, MarketData
from l2chaos.stacks.perpdex.engine.txs import parse_tx
from l2chaos.stacks.perpdex.markets import MARKET_NAMES, MARKETS, AccountLayout

SEC = 1_000_000_000
BTC, ETH, PAXG = MARKET_NAMES


class Chain:
    """An Exchange with a clock, block numbering and one-line transactions."""

    def __init__(self, guards: Guards | None = None, funding_index: int = 0) -> None:
        self.cache = MarketCache()
        self.t = 1_000 * SEC
        self.cache.load(
            MarketData(m, mk.ref_price, self.t, mk.ref_price, funding_index, self.t)
            for m, mk in MARKETS.items()
        )
        self.layout = AccountLayout(10)
        self.ex = Exchange(self.layout, guards or Guards(), self.cache)
        self.number = 0
        self.nonce = 0
        self.ready = True
        self.outputs: list[BlockOutput] = []
        self._open()

    def _open(self) -> None:
        self.number += 1
        self.ex.begin_block(BlockContext(self.number, self.number, self.t, self.t, self.ready))

    def tx(self, **fields: Any) -> dict[str, Any]:
        self.nonce += 1
        fields.setdefault("nonce", self.nonce)
        if fields["kind"] == "deposit":
            fields.setdefault("relayer_key", "k")
        return self.ex.apply(parse_tx(fields, self.layout))

    def deposit(self, account: int, amount: int) -> dict[str, Any]:
        return self.tx(kind="deposit", account=account, amount=amount)

    def order(
        self, account: int, market: str, side: str, size: int, price: int | None = None, **kw: Any
    ) -> dict[str, Any]:
        typ = "market" if price is None else "limit"
        return self.tx(
            kind="order",
            account=account,
            market=market,
            side=side,
            type=typ,
            size=size,
            price=price,
            **kw,
        )

    def price(self, market: str, price: int, observed_ts_ns: int | None = None) -> dict[str, Any]:
        ts = self.t if observed_ts_ns is None else observed_ts_ns
        return self.tx(
            kind="price", prices=[{"market": market, "price": price, "observed_ts_ns": ts}]
        )

    def block(self, advance_ns: int = 0) -> BlockOutput:
        out = self.ex.end_block()
        self.outputs.append(out)
        self.t += advance_ns
        self._open()
        return out

    def events(self, kind: str | None = None) -> list[Any]:
        evs = [e for o in self.outputs for e in o.body.events]
        return [e for e in evs if kind is None or e.kind == kind]

    def cash(self, account: int) -> int:
        return self.ex.account(account).cash

    def size(self, account: int, market: str) -> int:
        return self.ex.account(account).size(market)


@pytest.fixture
def chain() -> Chain:
    return Chain()


@pytest.fixture
def make_chain() -> type[Chain]:
    return Chain
