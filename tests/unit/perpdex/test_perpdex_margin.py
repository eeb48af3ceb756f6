"""Hand-computed cases: margin, liquidation price, funding, fees and PnL."""

from __future__ import annotations

from fractions import Fraction

from l2chaos.stacks.perpdex.engine import margin
from l2chaos.stacks.perpdex.engine.funding import funding_delta, mark_price, premium
from l2chaos.stacks.perpdex.engine.state import Account, MarketData, Position
from l2chaos.stacks.perpdex.markets import MARKETS, AccountLayout, format_quote, parse_quote

BTC = "BTC-USD-PERP"
ETH = "ETH-USD-PERP"
PAXG = "PAXG-USD-PERP"
HOUR = 3600 * 10**9


def md(market: str, mark: int, index: int | None = None, funding: int = 0) -> MarketData:
    return MarketData(market, index if index is not None else mark, 0, mark, funding, 0)


def view(**marks: int) -> dict[str, MarketData]:
    names = {"btc": BTC, "eth": ETH, "paxg": PAXG}
    out = {m: md(m, MARKETS[m].ref_price) for m in MARKETS}
    for k, v in marks.items():
        out[names[k]] = md(names[k], v)
    return out


def test_units_pinned_in_the_contract() -> None:
    assert MARKETS[BTC].ref_price == 90000  # $90,000 per BTC, 1e-6 BTC quanta
    assert MARKETS[ETH].price_from_usd("3000") == 30000  # 1e-5 ETH quanta
    assert MARKETS[PAXG].price_to_usd(40001) == "4000.1"
    assert MARKETS[BTC].size_from_units("0.0125") == 12500
    assert parse_quote("10.5") == 10_500_000
    assert format_quote(-80_036_000_000) == "-80036"
    assert (MARKETS[PAXG].imf_bps, MARKETS[PAXG].mmf_bps) == (1000, 500)


def test_equity_and_margins_of_a_10x_long() -> None:
    # $10,000 deposited, 1 BTC bought at $90,000 paying a 4 bps taker fee ($36).
    acct = Account(1, cash=10_000_000_000 - 90_000_000_000 - 36_000_000)
    acct.positions[BTC] = Position(1_000_000, 0)
    v = view(btc=90000)
    assert margin.equity(acct, v) == 9_964_000_000  # $9,964
    assert margin.initial_margin(acct, v) == 4_500_000_000  # 5% of $90,000
    assert margin.maintenance_margin(acct, v) == 2_700_000_000  # 3% of $90,000
    v = view(btc=85000)
    assert margin.equity(acct, v) == 4_964_000_000
    assert margin.maintenance_margin(acct, v) == 2_550_000_000


def test_initial_margin_counts_the_worse_side_of_open_orders() -> None:
    acct = Account(1, cash=10**10)
    acct.positions[ETH] = Position(-100_000, 0)  # short 1 ETH
    acct.open_buy[ETH] = 300_000  # bids for 3 ETH: net long 2 if all fill
    acct.open_sell[ETH] = 50_000  # offers 0.5 ETH: net short 1.5
    v = view(eth=30000)
    # worst = max(|-1 + 3|, |-1 - 0.5|) = 2 ETH = 200,000 quanta * 30000 * 5%
    assert margin.initial_margin(acct, v) == 300_000_000
    assert margin.initial_margin(acct, v, (ETH, "sell", 500_000)) == 30000 * 650_000 * 500 // 10_000


def test_margin_requirement_rounds_up_and_ignores_bad_prices() -> None:
    assert margin.margin_requirement(7, 30001, 4) == 85  # 210007 * 4 / 1e4 = 84.0028 → 85
    assert margin.margin_requirement(10, 0, 300) == 0
    assert margin.margin_requirement(10, -5, 300) == 0


def test_liquidation_price_isolated_long_and_short() -> None:
    long = Account(1, cash=-80_036_000_000, positions={BTC: Position(1_000_000, 0)})
    p = margin.liquidation_price(long, BTC, view())
    assert p == Fraction(80_036_000_000, 970_000)  # (0 - Q) / (S·(1 - 3%)) ≈ $82,511.34
    at = int(p) + 1  # one tick above: still safe; one below: liquidatable
    assert margin.equity(long, view(btc=at)) >= margin.maintenance_margin(long, view(btc=at))
    below = int(p)
    assert margin.equity(long, view(btc=below)) < margin.maintenance_margin(long, view(btc=below))
    # short 2 ETH at $3,000 with $1,000: Q = 1000 + 6000, p = Q / (|S|·1.03) = $3,398.05
    short = Account(2, cash=7_000_000_000, positions={ETH: Position(-200_000, 0)})
    assert margin.liquidation_price(short, ETH, view()) == Fraction(7_000_000_000, 206_000)


def test_liquidation_price_cross_margin_uses_other_positions() -> None:
    acct = Account(1, cash=-80_036_000_000)
    acct.positions[BTC] = Position(1_000_000, 0)
    acct.positions[ETH] = Position(100_000, 0)  # 1 ETH worth $3,000 adds equity and MM
    acct.cash -= 3_000_000_000
    # Q' = Q + 1 ETH * 30000 = -80,036e6; MM_other = 90e6; p = (90e6 + 80,036e6) / 970,000
    assert margin.liquidation_price(acct, BTC, view()) == Fraction(80_126_000_000, 970_000)
    assert margin.liquidation_price(Account(3, cash=10**9), BTC, view()) is None


def test_funding_settlement_floors_to_the_account_and_credits_dust() -> None:
    # a long of 3 base quanta whose index rose by 1,000,001: owes 3,000,003 micro-quanta
    assert margin.funding_settlement(3, 0, 1_000_001) == (-4, 999_997)
    # a short receives the same: +3.000003 quanta → 3 to the account, 3 micro to dust
    assert margin.funding_settlement(-3, 0, 1_000_001) == (3, 3)
    # exact amounts leave nothing
    assert margin.funding_settlement(1_000_000, 5_000_000_000, 5_123_456_789) == (-123_456_789, 0)


def test_equity_includes_unsettled_funding() -> None:
    acct = Account(1, cash=0, positions={BTC: Position(3, 0)})
    v = {**view(), BTC: md(BTC, 90000, funding=1_000_001)}
    assert margin.equity(acct, v) == 3 * 90000 - 4


def test_funding_rate_is_the_clamped_premium_over_eight_hours() -> None:
    assert premium(90450, 90000) == 450
    assert premium(95000, 90000) == 450  # capped at 0.5% of the index
    assert premium(80000, 90000) == -450
    assert funding_delta(90450, 90000, 8 * HOUR) == 450 * 1_000_000
    assert funding_delta(90450, 90000, HOUR) == 56_250_000
    assert funding_delta(89990, 90000, HOUR) == -1_250_000
    assert funding_delta(90450, 90000, -HOUR) == 0
    assert funding_delta(0, 0, 10**18) == 0  # an unpriced market accrues nothing


def test_mark_is_the_median_of_index_bid_ask() -> None:
    assert mark_price(90000, 90450, 90460) == 90450
    assert mark_price(90000, 89000, 89010) == 89010
    assert mark_price(90000, 89990, 90010) == 90000
    assert mark_price(90000, None, 80000) == 90000  # one side missing counts as the index
    # bounded (price_validation): a stale book keeps the mark within ±1% of the index
    assert mark_price(90000, 95000, 95100, 100) == 90900
    assert mark_price(90000, 80000, 80100, 100) == 89100
    assert mark_price(90000, 90450, 90460, 100) == 90450


def test_account_layout_roles() -> None:
    layout = AccountLayout(1000)
    assert layout.role(1) == "trader"
    assert layout.role(1000) == "trader"
    assert layout.probe == 1001
    assert layout.role(1001) == "probe"
    assert list(layout.adversaries) == [1002, 1003, 1004, 1005]
    assert layout.last_user == 1005
    assert not layout.is_user(1006)
    assert not layout.is_user(-2)
