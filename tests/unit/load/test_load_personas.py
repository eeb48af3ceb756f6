"""Persona decisions are a pure function of the seed; order arithmetic is exact."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from l2chaos.load import parse_load
from l2chaos.load.personas import (
    MarketInfo,
    cross_price,
    leveraged_size,
    make_brain,
    order_size,
    pick_item,
    quote_price,
    user_seed,
)
from l2chaos.params import Where

PLAN = parse_load(None, Where(None, "load"), 1)


def settings(persona: str) -> dict[str, Any]:
    return dict(PLAN.persona(persona).settings)


def decisions(
    persona: str,
    *,
    seed: int = 42,
    worker: int = 0,
    ordinal: int = 0,
    n: int = 200,
    **over: Any,
) -> list[dict[str, Any]]:
    s = settings(persona) | over
    brain = make_brain(persona, s, seed=seed, worker=worker, ordinal=ordinal)
    return [brain.next().to_json() for _ in range(n)]


@pytest.mark.parametrize("persona", ["maker", "taker", "leveraged", "bridger", "reader"])
def test_same_seed_same_decisions(persona: str) -> None:
    assert decisions(persona) == decisions(persona)


@pytest.mark.parametrize("persona", ["maker", "taker", "leveraged", "bridger", "reader"])
def test_seed_worker_and_ordinal_each_change_the_stream(persona: str) -> None:
    base = decisions(persona)
    assert decisions(persona, seed=43) != base
    assert decisions(persona, worker=1) != base
    assert decisions(persona, ordinal=1) != base


def test_user_seed_is_stable_across_runs_and_versions() -> None:
    # sha256 based, never Python's salted hash(): pinned values catch a change, which
    # would make old seeds replay differently.
    assert user_seed(1, 0, "maker", 0) == 0x0B0D4289D82A86AB
    first = decisions("taker", seed=1, n=1)[0]
    assert first == {
        "step": 0, "kind": "market", "think_s": 2.23, "pick": 0.909634, "side": "sell",
        "size_usd": 469.9,
    }  # fmt: skip
    assert (
        len({user_seed(7, w, p, o) for w in range(3) for p in ("maker", "taker") for o in range(5)})
        == 30
    )


def test_steps_are_numbered_from_zero() -> None:
    assert [d["step"] for d in decisions("taker", n=5)] == [0, 1, 2, 3, 4]


def test_maker_quotes_within_its_settings() -> None:
    ds = decisions(
        "maker",
        n=2000,
        size_usd=[100, 200],
        spread_bps=[5, 10],
        cancel_ratio=0.2,
        refresh_ratio=0.1,
    )
    kinds = [d["kind"] for d in ds]
    assert set(kinds) == {"quote", "cancel", "refresh"}
    assert 0.15 < kinds.count("cancel") / len(kinds) < 0.25
    assert 0.06 < kinds.count("refresh") / len(kinds) < 0.14
    for d in ds:
        assert 0.5 <= d["think_s"] <= 2.0
        if d["kind"] == "quote":
            assert 100 <= d["size_usd"] <= 200
            assert 5 <= d["bps"] <= 10
            assert d["side"] in ("buy", "sell")
            assert 0 <= d["pick"] < 1


def test_taker_mixes_market_and_limit_orders() -> None:
    ds = decisions("taker", n=2000, market_ratio=0.5, close_ratio=0.0)
    kinds = [d["kind"] for d in ds]
    assert "close" not in kinds
    assert 0.4 < kinds.count("market") / len(kinds) < 0.6
    assert all("bps" in d for d in ds if d["kind"] == "limit")
    assert all("bps" not in d for d in ds if d["kind"] == "market")


def test_leveraged_cycles_open_hold_close() -> None:
    ds = decisions("leveraged", n=300, hold_polls=[2, 4], leverage=[15, 19], long_ratio=1.0)
    kinds = "".join({"open": "o", "hold": "h", "close": "c"}[d["kind"]] for d in ds)
    import re

    cycles = re.findall(r"o(h*)c", kinds)
    assert len(cycles) > 20
    assert all(2 <= len(h) <= 4 for h in cycles)
    assert kinds.startswith("o")
    opens = [d for d in ds if d["kind"] == "open"]
    assert all(d["side"] == "buy" and 15 <= d["leverage"] <= 19 for d in opens)


def test_bridger_and_reader_respect_ratios_and_mix() -> None:
    ds = decisions("bridger", n=1000, withdraw_ratio=0.0, balance_ratio=0.0, deposit_usd=[10, 20])
    assert {d["kind"] for d in ds} == {"deposit"}
    assert all(10 <= d["amount_usd"] <= 20 for d in ds)
    rs = decisions("reader", n=1000, mix={"get_block": 1.0, "positions": 0.0}, blocks_back=[3, 3])
    assert {d["kind"] for d in rs} == {"get_block"}
    assert {d["back"] for d in rs} == {3}


def test_pick_item() -> None:
    assert pick_item([], 0.5) is None
    assert pick_item(["a", "b", "c"], 0.0) == "a"
    assert pick_item(["a", "b", "c"], 0.5) == "b"
    assert pick_item(["a", "b", "c"], 0.999999) == "c"


BTC = MarketInfo("BTC-USD-PERP", Decimal(90000), Decimal("0.000001"), Decimal(1), 500)
ETH = MarketInfo("ETH-USD-PERP", Decimal("3000.5"), Decimal("0.00001"), Decimal("0.1"), 500)


def test_order_size_hand_computed() -> None:
    assert order_size(900, BTC) == Decimal("0.010000")
    assert order_size(1000, BTC) == Decimal("0.011111")  # floor of 0.0111111…
    assert order_size(0.01, BTC) == Decimal("0.000001")  # at least one step
    assert order_size(300.05, ETH) == Decimal("0.10000")
    with pytest.raises(ValueError, match="no positive index"):
        order_size(10, MarketInfo("X", Decimal(0), Decimal(1), Decimal(1), 500))


def test_quote_and_cross_prices_hand_computed() -> None:
    assert quote_price(BTC, "buy", 10) == Decimal(89910)
    assert quote_price(BTC, "sell", 10) == Decimal(90090)
    assert quote_price(ETH, "buy", 1) == Decimal("3000.1")  # 3000.19995 down to the tick
    assert quote_price(ETH, "sell", 1) == Decimal("3000.9")  # 3000.80005 up to the tick
    assert cross_price(BTC, "buy", 20) == Decimal(90180)
    assert cross_price(BTC, "sell", 20) == Decimal(89820)
    assert cross_price(ETH, "buy", 0) == Decimal("3000.5")


def test_leveraged_size_is_capped_below_the_margin_limit() -> None:
    # 10x of $1000 at $90000: 0.111111 BTC
    assert leveraged_size(Decimal(1000), 10, BTC) == Decimal("0.111111")
    # 50x asked, IMF 5% allows 20x, capped at 19x: 19000 / 90000 = 0.211111
    assert leveraged_size(Decimal(1000), 50, BTC) == Decimal("0.211111")
    assert leveraged_size(Decimal(0), 10, BTC) == 0


@given(
    price=st.decimals(min_value=Decimal("0.1"), max_value=Decimal(200000), places=1),
    bps=st.floats(min_value=0, max_value=500),
    side=st.sampled_from(["buy", "sell"]),
)
def test_quotes_are_passive_and_crosses_aggressive(price: Decimal, bps: float, side: str) -> None:
    m = MarketInfo("M", price, Decimal("0.00001"), Decimal("0.1"), 500)
    q = quote_price(m, side, bps)
    c = cross_price(m, side, bps)
    for p in (q, c):
        assert p > 0
        assert (p / m.price_step) == (p / m.price_step).to_integral_value()
    if side == "buy":
        assert q <= price or q == m.price_step
        assert c >= price
    else:
        assert q >= price
        assert c <= price or c == m.price_step


@given(
    notional=st.floats(min_value=1, max_value=1e6),
    price=st.decimals(min_value=Decimal(1), max_value=Decimal(200000), places=0),
)
def test_order_size_never_exceeds_the_notional_by_more_than_a_step(
    notional: float, price: Decimal
) -> None:
    m = MarketInfo("M", price, Decimal("0.000001"), Decimal(1), 500)
    size = order_size(notional, m)
    assert size >= m.size_step
    assert size * price <= Decimal(str(notional)) + m.size_step * price
