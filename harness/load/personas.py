"""Persona decisions: pure, seeded, testable without Locust or a stack.

A persona user asks its `Brain` for the next `Intent` (what to do and how long to think
afterwards); the Locust side (`locustfile.py`, `ops.py`) turns the intent into HTTP
calls using what it has observed (prices, open orders, positions). Intents depend only
on the seed, the worker, the persona and the user's ordinal on its worker, never on
responses or timing, so the same seed gives the same sequence of decisions whatever the
stack does; what a decision becomes on the wire (a price, a size) may differ.

Also here, the pure arithmetic that turns a decision into order fields: sizes from USD
notionals and prices from index and bps, in `Decimal`, rounded to the market's steps.
"""

from __future__ import annotations

import hashlib
import random
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, ClassVar, NamedTuple

__all__ = [
    "BRAINS",
    "Brain",
    "Intent",
    "MarketInfo",
    "WeightedOps",
    "cross_price",
    "leveraged_size",
    "make_brain",
    "order_size",
    "pick_item",
    "quote_price",
    "user_seed",
]

BPS = Decimal(10_000)


def user_seed(seed: int, worker: int, persona: str, ordinal: int) -> int:
    """The seed of one user's random stream: a hash of (scenario seed, worker, persona,
    ordinal of this persona's users on that worker). Stable across Python versions."""
    text = f"l2chaos-load|{seed}|{worker}|{persona}|{ordinal}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


@dataclass(frozen=True)
class Intent:
    """One decision of a persona. Fields a kind does not use are None.

    `pick` (in [0, 1)) chooses among things only known at run time (which market, which
    block of the recent ones), so the choice stays seeded although the list is not.
    """

    step: int
    kind: str
    think_s: float
    pick: float | None = None
    side: str | None = None
    size_usd: float | None = None
    bps: float | None = None
    leverage: float | None = None
    amount_usd: float | None = None
    back: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"step": self.step, "kind": self.kind, "think_s": self.think_s}
        for key in ("pick", "side", "size_usd", "bps", "leverage", "amount_usd", "back"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


def _r(x: float, digits: int) -> float:
    return round(x, digits)


class _OrderDraws(NamedTuple):
    side: str
    size_usd: float
    bps: float
    pick: float
    think: float


class Brain(ABC):
    """A persona's decision maker: a seeded random stream and the persona's settings."""

    persona: ClassVar[str]

    def __init__(self, settings: Mapping[str, Any], rng: random.Random) -> None:
        self.settings = settings
        self.rng = rng
        self.step = 0

    def _uniform(self, key: str) -> float:
        lo, hi = self.settings[key]
        return float(lo) + (float(hi) - float(lo)) * self.rng.random()

    def _think(self) -> float:
        lo, hi = self.settings["think"]  # nanoseconds
        return _r((lo + (hi - lo) * self.rng.random()) / 1e9, 3)

    def _order_draws(self, bps_key: str) -> _OrderDraws:
        """An order's draws, in this order: side (even odds), size, the distance
        `bps_key` from the index, the pick and the think time."""
        side = "buy" if self.rng.random() < 0.5 else "sell"
        size = _r(self._uniform("size_usd"), 2)
        bps = _r(self._uniform(bps_key), 2)
        pick = _r(self.rng.random(), 6)
        return _OrderDraws(side, size, bps, pick, self._think())

    def next(self) -> Intent:
        intent = self._decide(self.step)
        self.step += 1
        return intent

    @abstractmethod
    def _decide(self, step: int) -> Intent: ...


class MakerBrain(Brain):
    """Quotes post-only around the index; cancels the oldest quote; re-reads its orders."""

    persona = "maker"

    def _decide(self, step: int) -> Intent:
        r = self.rng.random()
        o = self._order_draws("spread_bps")
        s = self.settings
        if r < s["cancel_ratio"]:
            return Intent(step, "cancel", o.think)
        if r < s["cancel_ratio"] + s["refresh_ratio"]:
            return Intent(step, "refresh", o.think)
        return Intent(
            step, "quote", o.think, pick=o.pick, side=o.side, size_usd=o.size_usd, bps=o.bps
        )


class TakerBrain(Brain):
    """Market orders and crossing limit orders; now and then flattens its positions."""

    persona = "taker"

    def _decide(self, step: int) -> Intent:
        r = self.rng.random()
        m = self.rng.random()
        o = self._order_draws("cross_bps")
        s = self.settings
        if r < s["close_ratio"]:
            return Intent(step, "close", o.think)
        kind = "market" if m < s["market_ratio"] else "limit"
        return Intent(
            step, kind, o.think, pick=o.pick, side=o.side, size_usd=o.size_usd,
            bps=o.bps if kind == "limit" else None,
        )  # fmt: skip


class LeveragedBrain(Brain):
    """Open at high leverage, hold (reading positions), close, again."""

    persona = "leveraged"

    def __init__(self, settings: Mapping[str, Any], rng: random.Random) -> None:
        super().__init__(settings, rng)
        self._holds_left = -1  # -1: next step opens

    def _decide(self, step: int) -> Intent:
        side = "buy" if self.rng.random() < self.settings["long_ratio"] else "sell"
        lev = _r(self._uniform("leverage"), 2)
        lo, hi = self.settings["hold_polls"]
        holds = self.rng.randint(int(lo), int(hi))
        pick = _r(self.rng.random(), 6)
        think = self._think()
        if self._holds_left < 0:
            self._holds_left = holds
            return Intent(step, "open", think, pick=pick, side=side, leverage=lev)
        if self._holds_left > 0:
            self._holds_left -= 1
            return Intent(step, "hold", think)
        self._holds_left = -1
        return Intent(step, "close", think)


class BridgerBrain(Brain):
    """Deposits and withdrawals through the bridge; reads its balance."""

    persona = "bridger"

    def _decide(self, step: int) -> Intent:
        r = self.rng.random()
        dep = _r(self._uniform("deposit_usd"), 2)
        wd = _r(self._uniform("withdraw_usd"), 2)
        think = self._think()
        s = self.settings
        if r < s["withdraw_ratio"]:
            return Intent(step, "withdraw", think, amount_usd=wd)
        if r < s["withdraw_ratio"] + s["balance_ratio"]:
            return Intent(step, "balance", think)
        return Intent(step, "deposit", think, amount_usd=dep)


class WeightedOps:
    """The operations of a `mix` setting with a positive weight, chosen by one draw."""

    def __init__(self, mix: Mapping[str, float]) -> None:
        self.ops = [op for op, w in mix.items() if w > 0]
        self.weights = [float(mix[op]) for op in self.ops]
        self.total = sum(self.weights)

    def choose(self, u: float) -> str:
        """The operation a uniform draw `u` in [0, 1) lands on."""
        x = u * self.total
        for op, w in zip(self.ops, self.weights, strict=True):
            if x < w:
                return op
            x -= w
        return self.ops[-1]


class ReaderBrain(Brain):
    """Reads blocks, receipts and positions, weighted by `mix`."""

    persona = "reader"

    def __init__(self, settings: Mapping[str, Any], rng: random.Random) -> None:
        super().__init__(settings, rng)
        self._mix = WeightedOps(settings["mix"])

    def _decide(self, step: int) -> Intent:
        u = self.rng.random()
        lo, hi = self.settings["blocks_back"]
        back = self.rng.randint(int(lo), int(hi))
        pick = _r(self.rng.random(), 6)
        think = self._think()
        kind = self._mix.choose(u)
        if kind == "get_block":
            return Intent(step, kind, think, back=back)
        if kind == "get_receipt":
            return Intent(step, kind, think, pick=pick)
        return Intent(step, kind, think)


BRAINS: Mapping[str, type[Brain]] = {
    b.persona: b for b in (MakerBrain, TakerBrain, LeveragedBrain, BridgerBrain, ReaderBrain)
}


def make_brain(
    persona: str, settings: Mapping[str, Any], *, seed: int, worker: int, ordinal: int
) -> Brain:
    """The brain of the `ordinal`-th user of `persona` on `worker`."""
    return BRAINS[persona](settings, random.Random(user_seed(seed, worker, persona, ordinal)))


def pick_item(items: Sequence[Any], pick: float) -> Any:
    """The item a `pick` in [0, 1) selects; None from an empty sequence."""
    if not items:
        return None
    return items[min(int(pick * len(items)), len(items) - 1)]


# ------------------------------------------------------------------------------ pricing


@dataclass(frozen=True)
class MarketInfo:
    """What a persona needs of a market, in human units (USD, base asset)."""

    name: str
    index_price: Decimal  # USD per unit of the base asset
    size_step: Decimal  # smallest size increment (base asset)
    price_step: Decimal  # price tick (USD)
    imf_bps: int  # initial margin fraction: maximum leverage = 10000 / imf_bps

    @property
    def max_leverage(self) -> Decimal:
        return BPS / Decimal(self.imf_bps) if self.imf_bps > 0 else Decimal(100)


def _floor_to(x: Decimal, step: Decimal) -> Decimal:
    return (x / step).to_integral_value(rounding=ROUND_FLOOR) * step


def _ceil_to(x: Decimal, step: Decimal) -> Decimal:
    return (x / step).to_integral_value(rounding=ROUND_CEILING) * step


def order_size(notional_usd: float | Decimal, m: MarketInfo) -> Decimal:
    """Size worth `notional_usd` at the index price, rounded down to the size step, and
    at least one step. Raises ValueError when the index price is not positive."""
    if m.index_price <= 0:
        raise ValueError(f"{m.name}: no positive index price ({m.index_price})")
    size = _floor_to(Decimal(str(notional_usd)) / m.index_price, m.size_step)
    return max(size, m.size_step)


def quote_price(m: MarketInfo, side: str, offset_bps: float) -> Decimal:
    """A passive quote `offset_bps` away from the index: below it to buy, above to sell,
    rounded away from the index to the tick, never below one tick."""
    off = Decimal(str(offset_bps)) / BPS
    if side == "buy":
        price = _floor_to(m.index_price * (1 - off), m.price_step)
    else:
        price = _ceil_to(m.index_price * (1 + off), m.price_step)
    return max(price, m.price_step)


def cross_price(m: MarketInfo, side: str, cross_bps: float) -> Decimal:
    """An aggressive limit `cross_bps` through the index: above it to buy, below to sell,
    rounded further through to the tick, never below one tick."""
    off = Decimal(str(cross_bps)) / BPS
    if side == "buy":
        price = _ceil_to(m.index_price * (1 + off), m.price_step)
    else:
        price = _floor_to(m.index_price * (1 - off), m.price_step)
    return max(price, m.price_step)


def leveraged_size(equity_usd: Decimal, leverage: float, m: MarketInfo) -> Decimal:
    """Size giving `leverage` times equity of notional, with the leverage capped at 95% of
    the market's maximum so that the order passes its initial margin check.
    Zero when there is no equity."""
    if equity_usd <= 0 or m.index_price <= 0:
        return Decimal(0)
    lev = min(Decimal(str(leverage)), m.max_leverage * Decimal("0.95"))
    return _floor_to(equity_usd * lev / m.index_price, m.size_step)
