"""`perpdex`: the reference exchange's trader personas (REST ui-api, starknet_* reads).

Makers, takers, leveraged traders and bridgers trade through the ui-api with their
account's API key (accounts from the stack's `accounts` endpoint); readers also call
the rpc. Decisions come from seeded brains (`personas.py`), calls and their recording
from `ops.Trader`. See docs/load.md ("Personas").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar

from l2chaos.params import Param, Where

from ..history import Outcome
from ..ops import TRADING_PERSONAS, Trader, read_result
from ..personas import make_brain
from .base import Driver, DriverArgs, TraderProtocol

__all__ = ["PERSONA_PARAMS", "PerpdexProtocol", "check_mix", "whole_range"]

_S = 1_000_000_000
_MS = 1_000_000

READER_OPS: tuple[str, ...] = ("block_number", "get_block", "get_receipt", "positions")
_MARKETS = Param("markets", "str_list", [], "markets to trade; empty: every market the stack lists")


def _price_refresh(default_ns: int) -> Param:
    return Param(
        "price_refresh", "duration", default_ns,
        "re-read prices (GET /v1/markets) before a step when they are older than this",
        min=1 * _MS,
    )  # fmt: skip


PERSONA_PARAMS: Mapping[str, tuple[Param, ...]] = MappingProxyType(
    {
        "maker": (
            _MARKETS,
            _price_refresh(1 * _S),
            Param("size_usd", "range", [200, 2000], "notional of one quote in USD", min=1),
            Param("spread_bps", "range", [5, 50], "distance of a quote from the index price, in bps", min=0, max=5000),
            Param("max_open", "int", 4, "open quotes kept per maker; the oldest is cancelled beyond", min=1, max=1000),
            Param("cancel_ratio", "ratio", 0.25, "share of steps that cancel the oldest quote"),
            Param("refresh_ratio", "ratio", 0.05, "share of steps that re-read open orders"),
            Param("think", "duration_range", [500 * _MS, 2 * _S], "pause between steps", min=0),
        ),
        "taker": (
            _MARKETS,
            _price_refresh(5 * _S),
            Param("size_usd", "range", [50, 500], "notional of one order in USD", min=1),
            Param("market_ratio", "ratio", 0.6, "share of market orders (the rest are crossing limits)"),
            Param("cross_bps", "range", [0, 30], "how far a limit order crosses the index price, in bps", min=0, max=5000),
            Param("close_ratio", "ratio", 0.1, "share of steps that flatten positions (reduce-only)"),
            Param("think", "duration_range", [500 * _MS, 3 * _S], "pause between steps", min=0),
        ),
        "leveraged": (
            _MARKETS,
            _price_refresh(5 * _S),
            Param("leverage", "range", [10, 18], "position notional over equity (capped below the market's limit)", min=1, max=1000),
            Param("long_ratio", "ratio", 0.8, "share of longs (the ones a zero price liquidates)"),
            Param("hold_polls", "range", [5, 20], "position reads while holding, before closing", min=0, max=100_000),
            Param(
                "open_order", "enum", "limit",
                "how a position is opened: a limit at the index that rests until filled, or a market order",
                choices=("limit", "market"),
            ),
            Param("think", "duration_range", [1 * _S, 3 * _S], "pause between steps", min=0),
        ),
        "bridger": (
            Param("deposit_usd", "range", [100, 1000], "amount of one deposit in USD", min=0.01),
            Param("withdraw_usd", "range", [50, 500], "amount of one withdrawal in USD", min=0.01),
            Param("withdraw_ratio", "ratio", 0.4, "share of steps that withdraw"),
            Param("balance_ratio", "ratio", 0.2, "share of steps that read the account"),
            Param("think", "duration_range", [2 * _S, 6 * _S], "pause between steps", min=0),
        ),
        "reader": (
            Param(
                "mix", "mapping", {"block_number": 3, "get_block": 3, "get_receipt": 2, "positions": 2},
                "weights of the reads: " + ", ".join(READER_OPS),
            ),
            Param("blocks_back", "range", [0, 20], "how far behind the head a block read goes", min=0, max=1_000_000),
            Param("think", "duration_range", [200 * _MS, 1 * _S], "pause between steps", min=0),
        ),
    }
)  # fmt: skip


def check_mix(
    mix: Mapping[str, Any], allowed: Sequence[str], given: Any, where: Where
) -> dict[str, float]:
    """A reader's `mix`: known reads with weights >= 0, at least one positive."""
    container = given.get("mix") if isinstance(given, Mapping) else None
    for op, w in mix.items():
        if op not in allowed:
            raise (
                where.child("mix")
                .child(op)
                .error(f"unknown read {op!r}; allowed: {', '.join(allowed)}", container, op)
            )
        if isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0:
            raise (
                where.child("mix")
                .child(op)
                .error(f"expected a weight (a number >= 0), got {w!r}", container, op)
            )
    if not mix or sum(mix.values()) <= 0:
        raise where.child("mix").error(
            "expected at least one read with a positive weight", given, "mix"
        )
    return {op: float(w) for op, w in mix.items()}


def whole_range(s: Mapping[str, Any], key: str, given: Any, where: Where) -> list[int]:
    lo, hi = s[key]
    if lo != int(lo) or hi != int(hi):
        raise where.child(key).error(f"expected whole numbers, got {s[key]!r}", given, key)
    return [int(lo), int(hi)]


class _TraderDriver:
    """A `Trader` as a `Driver`: trading personas learn the markets first."""

    def __init__(self, trader: Trader) -> None:
        self.trader = trader
        self.account = trader.account

    def start(self) -> None:
        if self.trader.persona in TRADING_PERSONAS:
            self.trader.start()

    def step(self) -> float:
        return self.trader.step()


class PerpdexProtocol(TraderProtocol):
    name = "perpdex"
    summary = (
        "the reference exchange: REST orders, cancels, deposits and withdrawals through the "
        "ui-api with each account's API key; starknet_* reads on the rpc"
    )
    personas = PERSONA_PARAMS
    default_weights: ClassVar[Mapping[str, float]] = MappingProxyType(
        {"maker": 2, "taker": 4, "leveraged": 3, "bridger": 1, "reader": 2}
    )
    write_ops = frozenset({"place_order", "cancel_order", "deposit", "withdraw"})

    def check_persona(
        self, persona: str, settings: dict[str, Any], given: Any, where: Where
    ) -> None:
        s = settings
        if persona in ("maker", "taker", "leveraged"):
            markets: Sequence[str] = s["markets"]
            if len(set(markets)) != len(markets):
                raise where.child("markets").error(
                    f"lists a market twice: {markets!r}", given, "markets"
                )
        if persona == "maker" and s["cancel_ratio"] + s["refresh_ratio"] > 1:
            raise where.child("refresh_ratio").error(
                "cancel_ratio + refresh_ratio must be at most 1", given, "refresh_ratio"
            )
        if persona == "bridger" and s["withdraw_ratio"] + s["balance_ratio"] > 1:
            raise where.child("balance_ratio").error(
                "withdraw_ratio + balance_ratio must be at most 1", given, "balance_ratio"
            )
        if persona == "leveraged":
            s["hold_polls"] = whole_range(s, "hold_polls", given, where)
        if persona == "reader":
            s["mix"] = check_mix(s["mix"], READER_OPS, given, where)
            s["blocks_back"] = whole_range(s, "blocks_back", given, where)

    def endpoints_needed(self, counts: Mapping[str, int]) -> set[str]:
        needs = {"ui"} if sum(counts.values()) > 0 else set()
        if counts.get("reader", 0) > 0:
            needs.add("rpc")
        return needs

    def read_result(self, op: str, body: str) -> tuple[Outcome, Any]:
        return read_result(op, body)

    def driver(self, args: DriverArgs) -> Driver:
        brain = make_brain(
            args.persona, args.settings, seed=args.seed, worker=args.worker, ordinal=args.ordinal
        )
        return _TraderDriver(Trader(args, brain))
