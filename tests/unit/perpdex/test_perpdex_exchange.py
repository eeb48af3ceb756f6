"""The exchange state machine: matching, fees, PnL, liquidation, guards, modes."""

from __future__ import annotations

from typing import Any

import pytest
from l2chaos.stacks.perpdex.engine.exchange import Guards
from l2chaos.stacks.perpdex.markets import DUST, FEES, INSURANCE, LIQUIDATOR

BTC = "BTC-USD-PERP"
ETH = "ETH-USD-PERP"
PAXG = "PAXG-USD-PERP"
SEC = 1_000_000_000
USD = 1_000_000


def open_10x_long(c: Any) -> None:
    """Account 1: $10,000 and long 1 BTC at $90,000 (taker); account 2 the short maker."""
    c.deposit(1, 10_000 * USD)
    c.deposit(2, 100_000 * USD)
    c.deposit(INSURANCE, 1_000_000 * USD)
    assert c.order(2, BTC, "sell", 1_000_000, 90000)["order_status"] == "open"
    r = c.order(1, BTC, "buy", 1_000_000)
    assert r["order_status"] == "filled"
    assert r["fills"][0]["price"] == 90000
    c.block()


def test_fill_moves_notional_and_fees(chain: Any) -> None:
    open_10x_long(chain)
    assert chain.cash(1) == 10_000 * USD - 90_000 * USD - 36 * USD
    assert chain.cash(2) == 100_000 * USD + 90_000 * USD - 9 * USD
    assert chain.cash(FEES) == 45 * USD
    assert chain.size(1, BTC) == 1_000_000
    assert chain.size(2, BTC) == -1_000_000
    fill = chain.events("fill")[0]
    assert (fill.data["taker_fee"], fill.data["maker_fee"], fill.data["mode"]) == (
        36 * USD,
        9 * USD,
        "normal",
    )
    assert fill.ledger.cash == [
        [1, -90_000 * USD - 36 * USD],
        [2, 90_000 * USD - 9 * USD],
        [FEES, 45 * USD],
    ]
    assert chain.events("fee") == []


def test_round_trip_realises_pnl_minus_fees(chain: Any) -> None:
    open_10x_long(chain)
    start = chain.cash(1) + 90_000 * USD + 36 * USD  # cash before the trade
    chain.order(2, BTC, "buy", 1_000_000, 91000)
    chain.order(1, BTC, "sell", 1_000_000)
    chain.block()
    assert chain.size(1, BTC) == 0
    # +$1,000 price gain - $36 - $36.40 taker fees
    assert chain.cash(1) - start == 927_600_000


def test_price_time_priority(chain: Any) -> None:
    for a in (1, 2, 3, 4):
        chain.deposit(a, 100_000 * USD)
    first = chain.order(2, ETH, "sell", 100_000, 30010)["order_id"]
    second = chain.order(3, ETH, "sell", 100_000, 30010)["order_id"]
    better = chain.order(4, ETH, "sell", 100_000, 30005)["order_id"]
    r = chain.order(1, ETH, "buy", 250_000, 30010)
    assert [(f["price"], f["size"]) for f in r["fills"]] == [
        (30005, 100_000),
        (30010, 100_000),
        (30010, 50_000),
    ]
    makers = [e.data["maker_order"] for e in chain.ex.block.events if e.kind == "fill"]
    assert makers == [better, first, second]
    assert chain.ex.orders[second].remaining == 50_000


def test_post_only_reduce_only_self_trade_and_market_remainder(chain: Any) -> None:
    chain.deposit(1, 100_000 * USD)
    chain.deposit(2, 100_000 * USD)
    chain.order(2, ETH, "sell", 100_000, 30010)
    r = chain.order(1, ETH, "buy", 100_000, 30010, post_only=True)
    assert (r["status"], r["reason"]) == ("rejected", "post_only_would_cross")
    assert chain.order(1, ETH, "buy", 100_000, 30000, post_only=True)["order_status"] == "open"
    r = chain.order(1, ETH, "sell", 100_000, 30000, reduce_only=True)
    assert (r["status"], r["reason"]) == ("rejected", "reduce_only_would_increase")
    # a buy by account 2 would meet its own offer first: that offer is cancelled
    r = chain.order(2, ETH, "buy", 50_000, 30020)
    assert r["order_status"] == "open"
    assert r["fills"] == []
    assert [e.data["reason"] for e in chain.ex.block.events if e.kind == "order_cancelled"] == [
        "self_trade"
    ]
    # market sell 3 ETH against 0.5 (acct 2 bid, first) + 1 ETH (acct 1 bid): remainder cancelled
    chain.deposit(3, 100_000 * USD)
    r = chain.order(3, ETH, "sell", 300_000)
    assert r["order_status"] == "cancelled"
    assert r["remaining"] == 150_000
    # reduce-only is clipped to the position
    r = chain.order(3, ETH, "buy", 500_000, 30100, reduce_only=True)
    assert r["order_status"] == "open"
    assert r["remaining"] == 150_000


def test_cancel_only_owner_and_modes(chain: Any) -> None:
    chain.deposit(1, 100_000 * USD)
    oid = chain.order(1, ETH, "buy", 100_000, 29000)["order_id"]
    assert chain.tx(kind="cancel", account=2, order_id=oid)["reason"] == "unknown_order"
    chain.tx(kind="mode", mode="cancel_only")
    assert chain.order(1, ETH, "buy", 100_000, 29000)["reason"] == "mode_cancel_only"
    assert chain.tx(kind="cancel", account=1, order_id=oid)["order_status"] == "cancelled"
    chain.tx(kind="mode", mode="post_only")
    assert chain.order(1, ETH, "buy", 100_000, 29000)["reason"] == "mode_post_only"
    assert chain.order(1, ETH, "buy", 100_000, 29000, post_only=True)["status"] == "accepted"
    chain.tx(kind="mode", mode="halted")
    assert chain.order(1, ETH, "buy", 1, 29000, post_only=True)["reason"] == "mode_halted"
    modes = [
        (e.data["from"], e.data["mode"]) for e in chain.ex.block.events if e.kind == "mode_change"
    ]
    assert modes == [
        ("normal", "cancel_only"),
        ("cancel_only", "post_only"),
        ("post_only", "halted"),
    ]


def test_insufficient_margin_and_withdrawals(chain: Any) -> None:
    chain.deposit(1, 1_000 * USD)
    chain.deposit(2, 100_000 * USD)
    # $1,000 supports $20,000 of notional at 5% IM: 0.3 BTC ($27,000) is too much
    assert chain.order(1, BTC, "buy", 300_000, 80000)["reason"] == "insufficient_margin"
    assert chain.order(1, BTC, "buy", 200_000, 90000)["status"] == "accepted"
    # the open bid reserves $900 IM: withdrawing $200 of $1,000 breaks it
    r = chain.tx(kind="withdraw", account=1, amount=200 * USD)
    assert (r["status"], r["reason"]) == ("rejected", "insufficient_margin")
    assert (
        chain.tx(kind="withdraw", account=2, amount=200_000 * USD)["reason"] == "insufficient_cash"
    )
    r = chain.tx(kind="withdraw", account=2, amount=50 * USD)
    assert r["status"] == "accepted"
    ev = chain.ex.block.events[-1]
    assert ev.kind == "withdrawal"
    assert r["nonce"] == ev.seq
    assert ev.ledger.cash == [[2, -50 * USD]]


def test_deposit_message_credited_once(chain: Any) -> None:
    assert chain.tx(kind="deposit", account=1, amount=5, nonce=77)["status"] == "accepted"
    r = chain.tx(kind="deposit", account=1, amount=5, nonce=77)
    assert (r["status"], r["reason"]) == ("rejected", "message_already_consumed")
    assert chain.cash(1) == 5


def test_funding_accrues_on_price_updates_and_settles_on_trade(make_chain: Any) -> None:
    c = make_chain(funding_index=5_000_000_000)
    open_10x_long(c)
    c.deposit(3, 100_000 * USD)
    c.deposit(4, 100_000 * USD)
    c.order(3, BTC, "buy", 10, 90450)  # the book sits 0.5% above the index
    c.order(4, BTC, "sell", 10, 90460)
    c.price(BTC, 90000)  # mark = median(90000, 90450, 90460) = 90450
    c.block(advance_ns=3600 * SEC)
    c.price(BTC, 90000)  # one hour at the capped premium of 450
    assert c.cache.get(BTC).funding_index == 5_000_000_000 + 56_250_000
    cash_before = c.cash(1)
    c.order(1, BTC, "sell", 10, 90450)  # touching the position settles funding first
    settle = [
        e for e in c.ex.block.events if e.kind == "funding_settlement" and e.data["account"] == 1
    ]
    assert settle[0].data["cash"] == -56_250_000  # the long pays 1 BTC * 56.25 = $56.25
    assert settle[0].ledger.pos == [[1, BTC, 1_000_000, 5_056_250_000]]
    # it then sells 10 quanta at 90450 as taker: 4 bps of 904,500 = 361.8 → 362
    assert c.cash(1) == cash_before - 56_250_000 + 10 * 90450 - 362


def test_liquidation_at_mark_with_fee_to_insurance(chain: Any) -> None:
    open_10x_long(chain)
    ins = chain.cash(INSURANCE)
    chain.price(BTC, 82000)  # liquidation price ≈ $82,511
    chain.block()
    [liq] = chain.events("liquidation")
    d = liq.data
    assert (d["account"], d["market"], d["size"], d["price"], d["oracle_price"]) == (
        1,
        BTC,
        1_000_000,
        82000,
        82000,
    )
    assert (d["equity"], d["maintenance"], d["guard"]) == (1_964_000_000, 2_460_000_000, None)
    assert d["cash"] == -80_036_000_000
    assert d["positions"] == {BTC: [1_000_000, 0]}
    assert d["fee"] == 820_000_000  # 1% of $82,000
    assert liq.ledger.cash == [
        [1, 82_000 * USD - 820 * USD],
        [LIQUIDATOR, -82_000 * USD],
        [INSURANCE, 820 * USD],
    ]
    assert chain.cash(1) == 1_144_000_000
    assert chain.size(1, BTC) == 0
    assert chain.size(LIQUIDATOR, BTC) == 1_000_000
    assert chain.cash(INSURANCE) == ins + 820 * USD


def test_negative_equity_covered_then_shortfall(make_chain: Any) -> None:
    c = make_chain()
    open_10x_long(c)
    c.price(BTC, 70000)  # equity = -80,036e6 + 70,000e6 = -$10,036
    c.block()
    [liq] = c.events("liquidation")
    assert liq.data["fee"] == 0
    [cover] = c.events("insurance_cover")
    assert cover.data == {"account": 1, "deficit": 10_036 * USD, "covered": 10_036 * USD}
    assert c.cash(1) == 0
    # a thin insurance fund: the rest is declared
    c2 = make_chain()
    c2.deposit(1, 10_000 * USD)
    c2.deposit(2, 100_000 * USD)
    c2.deposit(INSURANCE, 5_000 * USD)
    c2.order(2, BTC, "sell", 1_000_000, 90000)
    c2.order(1, BTC, "buy", 1_000_000)
    c2.block()
    c2.price(BTC, 70000)
    c2.block()
    [short] = c2.events("insurance_shortfall")
    assert short.data["shortfall"] == 5_036 * USD
    assert c2.cash(INSURANCE) == 0
    assert c2.cash(1) == -5_036 * USD


def test_empty_cache_reads_zero_prices_and_liquidates_longs_at_zero(make_chain: Any) -> None:
    """The incident in miniature: market data invalidated, nothing reloaded yet."""
    c = make_chain(funding_index=5_000_000_000)
    open_10x_long(c)
    c.cache.invalidate()
    c.block()
    [liq] = c.events("liquidation")
    assert (
        liq.data["price"],
        liq.data["oracle_price"],
        liq.data["markets"][BTC]["funding_index"],
    ) == (0, 0, 0)
    settle = [e for e in c.events("funding_settlement") if e.data["account"] == 1]
    assert settle[0].data["index_to"] == 0  # bogus funding: the long "receives" S * c
    assert settle[0].data["cash"] == 5_000_000_000


def guarded(make_chain: Any, **switches: bool) -> Any:
    c = make_chain(guards=Guards(**switches))
    open_10x_long(c)
    return c


def test_readiness_gate_blocks_orders_and_liquidations(make_chain: Any) -> None:
    c = guarded(make_chain, readiness_gate=True)
    c.ready = False
    c.block()  # the next block opens with the gate closed
    c.cache.invalidate()
    assert c.order(2, BTC, "sell", 10, 95000)["reason"] == "market_data_not_ready"
    c.block()
    c.block()
    blocked = c.events("liquidation_blocked")
    assert len(blocked) == 1  # recorded once at the same prices
    assert (blocked[0].data["guard"], blocked[0].data["price"]) == ("readiness_gate", 0)
    assert c.events("liquidation") == []


def test_price_validation_rejects_zero_and_jumps(make_chain: Any) -> None:
    loose = guarded(make_chain)
    loose.price(BTC, 0)
    loose.block()
    assert loose.events("liquidation")[0].data["price"] == 0
    strict = guarded(make_chain, price_validation=True)
    assert strict.price(BTC, 0)["prices"][0]["reason"] == "non_positive"
    assert strict.price(BTC, 75000)["prices"][0]["reason"] == "jump"  # -16.7% > 10%
    assert strict.price(BTC, 82000)["prices"][0]["status"] == "accepted"  # -8.9%
    strict.block()
    assert [e.data["reason"] for e in strict.events("price_rejected")] == ["non_positive", "jump"]
    assert len(strict.events("liquidation")) == 1


def test_price_validation_allows_a_genuine_move_after_an_outage(make_chain: Any) -> None:
    # the allowance widens with sqrt(gap / max price age): 10% at once, ~18% after 10 s
    c = guarded(make_chain, price_validation=True)
    before = c.t
    c.block(advance_ns=10 * SEC)  # the oracle was silent for 10 s while BTC fell 15%
    assert c.price(BTC, 76500, observed_ts_ns=before)["prices"][0]["reason"] == "jump"
    assert c.price(BTC, 76500)["prices"][0]["status"] == "accepted"  # 15% < 18.2%
    c.block(advance_ns=10 * SEC)
    assert c.price(BTC, 76500 * 3 // 2)["prices"][0]["reason"] == "jump"  # a x1.5 spike: no


def test_staleness_guard_blocks_on_old_index(make_chain: Any) -> None:
    c = guarded(make_chain, staleness_guard=True)
    c.price(BTC, 82000, observed_ts_ns=c.t - 10 * SEC)  # a lagging oracle
    c.block()
    [b] = c.events("liquidation_blocked")
    assert (b.data["guard"], b.data["price"]) == ("staleness_guard", 82000)
    c.price(BTC, 82000)
    c.block()
    assert len(c.events("liquidation")) == 1
    loose = guarded(make_chain)
    loose.price(BTC, 82000, observed_ts_ns=loose.t - 10 * SEC)
    loose.block()
    assert len(loose.events("liquidation")) == 1


def test_post_only_band_rejects_far_orders_and_pauses_liquidations(make_chain: Any) -> None:
    c = guarded(make_chain, post_only_band=True)
    c.tx(kind="mode", mode="post_only")
    c.deposit(5, 100_000 * USD)
    assert c.order(5, BTC, "buy", 10, 80000, post_only=True)["reason"] == "outside_price_band"
    assert c.order(5, BTC, "buy", 10, 86000, post_only=True)["status"] == "accepted"
    c.price(BTC, 82000)
    c.block()
    assert [e.data["guard"] for e in c.events("liquidation_blocked")] == ["post_only_pause"]
    loose = guarded(make_chain)
    loose.tx(kind="mode", mode="post_only")
    loose.deposit(5, 100_000 * USD)
    assert loose.order(5, BTC, "buy", 10, 80000, post_only=True)["status"] == "accepted"


def test_halted_pauses_liquidations(chain: Any) -> None:
    open_10x_long(chain)
    chain.tx(kind="mode", mode="halted")
    chain.price(BTC, 70000)
    chain.block()
    assert [e.data["guard"] for e in chain.events("liquidation_blocked")] == ["halted"]


def test_broken_fee_path_loses_the_fee(make_chain: Any) -> None:
    c = make_chain(guards=Guards(break_fee_path=True))
    open_10x_long(c)
    assert c.cash(FEES) == 0
    assert all(len(e.ledger.cash) == 2 for e in c.events("fill"))


@pytest.mark.parametrize("size", [3, 7, 1_000_001])
def test_dust_collects_funding_remainders(make_chain: Any, size: int) -> None:
    c = make_chain()
    c.deposit(1, 100_000 * USD)
    c.deposit(2, 100_000 * USD)
    c.order(2, ETH, "sell", size, 30000)
    c.order(1, ETH, "buy", size)
    c.block()
    c.cache.put(c.cache.get(ETH).with_(funding_index=1_000_001))
    c.order(1, ETH, "sell", size, 31000)
    c.order(2, ETH, "buy", size)
    c.block()
    total = sum(e.ledger.dust_micro for e in c.events("funding_settlement"))
    assert c.cash(DUST) == total
    assert 0 <= total < 2_000_000
    # long pays floor, short receives floor: the two remainders sum to 1e6 unless exact
    assert total in (0, 1_000_000)
