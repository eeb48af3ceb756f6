"""no_zero_price_liquidations and liquidations_justified on hand-made records."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from l2chaos.invariants.base import Verdict, Violation
from l2chaos.invariants.synth import RecordWriter

from tests._support.json_path import obj
from tests._support.verdicts import not_applicable

BTC = "BTC-USD-PERP"
ETH = "ETH-USD-PERP"
ONE_BTC = 1_000_000  # base quanta
Check = Callable[..., Verdict]


def liq_data(
    *,
    account: int = 7,
    price: int = 90_000,
    oracle_price: int = 90_000,
    mark_price: int = 90_000,
    size: int = ONE_BTC,
    cash: int | None = None,
    positions: dict[str, list[int]] | None = None,
    funding_index: int = 500_000_000,
    guard: str | None = None,
) -> dict[str, Any]:
    """A long of 1 BTC entered at 92,000 with $4,500 collateral: cash = -92e9 + 4.5e9."""
    return {
        "account": account,
        "market": BTC,
        "size": size,
        "price": price,
        "oracle_price": oracle_price,
        "mark_price": mark_price,
        "guard": guard,
        "cash": -92_000 * ONE_BTC + 4_500_000_000 if cash is None else cash,
        "positions": positions if positions is not None else {BTC: [size, funding_index]},
        "markets": {
            BTC: {
                "index_price": oracle_price,
                "mark_price": mark_price,
                "funding_index": funding_index,
            }
        },
        "equity": 0,
        "maintenance": 0,
        "fee": 0,
    }


def setup(rw: RecordWriter, ref: int = 90_000, markets: tuple[str, ...] = (BTC,)) -> None:
    rw.header()
    for t in range(0, 60, 1):
        for m in markets:
            rw.oracle(float(t), m, ref if m == BTC else 3_000)


def liquidation(
    rw: RecordWriter, t: float = 30.5, block: int = 5, kind: str = "liquidation", **kw: Any
) -> None:
    """A liquidation event (or `kind`: liquidation_blocked) with liq_data(**kw)."""
    rw.event(kind, block=block, block_seq=block, host_s=t, data=liq_data(**kw))


# ------------------------------------------------------ no_zero_price_liquidations


def test_positive_prices_hold(rw: RecordWriter, check: Check) -> None:
    setup(rw)
    liquidation(rw, account=7)
    liquidation(rw, account=8, t=31.0, block=6)
    v = check("no_zero_price_liquidations")
    assert v.status == "pass", v
    assert v.checked == {"liquidations": 2, "blocked_attempts": 0}
    assert not v.no_work


def test_zero_fill_price_is_caught_with_evidence(rw: RecordWriter, check: Check) -> None:
    setup(rw)
    liquidation(rw, account=7)
    liquidation(rw, account=42, block=9, t=40.0, price=0, oracle_price=0, mark_price=0)
    v = check("no_zero_price_liquidations")
    assert v.status == "fail"
    assert v.total_violations == 1
    ev = v.violations[0].evidence
    assert ev["account"] == 42
    assert ev["block"] == 9
    assert ev["seen"] == {"price": 0, "oracle_price": 0, "mark_price": 0}
    assert ev["host_ts_ns"] == rw.t(40.0)
    assert "account 42" in v.violations[0].message


def test_zero_oracle_price_alone_is_caught(rw: RecordWriter, check: Check) -> None:
    setup(rw)
    liquidation(rw, account=3, oracle_price=0)
    v = check("no_zero_price_liquidations")
    assert v.status == "fail"
    assert v.violations[0].evidence["seen"] == {"oracle_price": 0}


def test_negative_mark_price_is_caught(rw: RecordWriter, check: Check) -> None:
    setup(rw)
    liquidation(rw, account=3, mark_price=-5)
    v = check("no_zero_price_liquidations")
    assert v.status == "fail"
    assert v.violations[0].evidence["seen"] == {"mark_price": -5}


def test_blocked_attempts_count_as_checked(rw: RecordWriter, check: Check) -> None:
    setup(rw)
    liquidation(
        rw, 30.0, kind="liquidation_blocked", price=0, oracle_price=0, guard="readiness_gate"
    )
    v = check("no_zero_price_liquidations")
    assert v.status == "pass"
    assert v.checked == {"liquidations": 0, "blocked_attempts": 1}
    assert not v.no_work


def test_liquidation_without_a_price_is_vacuous(rw: RecordWriter, check: Check) -> None:
    setup(rw)
    rw.event("liquidation", block=5, block_seq=5, host_s=30.0, data={"account": 7, "market": BTC})
    v = check("no_zero_price_liquidations")
    assert v.status == "fail"
    assert v.total_violations == 0
    assert "checked nothing although the run had 1 liquidation attempts" in v.reason


def test_takeover_without_liquidation_event_is_vacuous(rw: RecordWriter, check: Check) -> None:
    setup(rw)
    # the liquidator account (-3) takes a position in a fill: a liquidation nobody recorded
    rw.event(
        "fill",
        block=5,
        block_seq=5,
        host_s=30.0,
        data={"market": BTC, "price": 0, "size": ONE_BTC},
        ledger={"cash": [], "pos": [[-3, BTC, ONE_BTC, 0], [7, BTC, 0, 0]], "dust_micro": 0},
    )
    for name in ("no_zero_price_liquidations", "liquidations_justified"):
        v = check(name)
        assert v.status == "fail", name
        assert "checked nothing" in v.reason


def test_no_attempts_is_no_work(rw: RecordWriter, check: Check) -> None:
    setup(rw)
    rw.event(
        "price_update", block=1, block_seq=1, host_s=1.0, data={"market": BTC, "price": 90_000}
    )
    v = check("no_zero_price_liquidations")
    assert v.status == "pass"
    assert v.no_work
    assert "no liquidation attempts" in v.reason


def test_missing_events_is_not_applicable(rw: RecordWriter, check: Check) -> None:
    rw.header()
    not_applicable(check("no_zero_price_liquidations"), "audit/events.jsonl")


# ------------------------------------------------------ liquidations_justified


def test_underwater_account_is_justified(rw: RecordWriter, check: Check) -> None:
    # equity at 90,000: -87.5e9 + 90e9 = 2.5e9 < maintenance 3% of 90e9 = 2.7e9
    setup(rw, ref=90_000)
    liquidation(rw)
    v = check("liquidations_justified")
    assert v.status == "pass", v.violations
    assert v.checked == {"liquidations": 1, "blocked_attempts": 0}


def unjustified(rw: RecordWriter, check: Check, account: int, price: int) -> Violation:
    """With the reference at 95,000, a liquidation of `account` at `price` (the oracle
    and mark price too) fails liquidations_justified: its first violation."""
    setup(rw, ref=95_000)
    liquidation(rw, account=account, price=price, oracle_price=price, mark_price=price)
    v = check("liquidations_justified")
    assert v.status == "fail"
    return v.violations[0]


def test_healthy_account_liquidated_is_caught(rw: RecordWriter, check: Check) -> None:
    # at 95,000 the same account has equity 7.5e9 >> maintenance 2.85e9
    violation = unjustified(rw, check, account=11, price=95_000)
    ev = violation.evidence
    assert ev["account"] == 11
    assert ev["reference_prices"] == {BTC: 95_000}
    # valued at the adverse price 94,050 (1% below): equity = -87.5e9 + 94.05e9 = 6.55e9
    assert ev["adverse_prices"] == {BTC: 94_050}
    assert ev["equity_recomputed"] == 6_550_000_000
    assert ev["maintenance_recomputed"] == 2_821_500_000
    assert "above maintenance" in violation.message


def test_zero_price_liquidation_fails_band_and_margin(rw: RecordWriter, check: Check) -> None:
    msg = unjustified(rw, check, account=12, price=0).message
    assert "outside ±5.00% of the reference 95000" in msg
    assert "above maintenance" in msg


def test_fill_outside_band_alone(rw: RecordWriter, check: Check) -> None:
    setup(rw, ref=90_000)
    liquidation(rw, price=80_000)  # justified account, but filled 11% off the reference
    v = check("liquidations_justified")
    assert v.status == "fail"
    assert "outside" in v.violations[0].message
    assert "maintenance" not in v.violations[0].message
    assert check("liquidations_justified", band=0.2).status == "pass"


def test_tolerance_gives_the_stack_the_benefit_of_the_doubt(rw: RecordWriter, check: Check) -> None:
    # collateral 2.9e9 at entry 92,000, reference 92,500: equity 3.4e9 vs maintenance 2.775e9
    # is healthy at the reference, but at 1% lower (91,575): 2.475e9 < 2.747e9.
    setup(rw, ref=92_500)
    cash = -92_000 * ONE_BTC + 2_900_000_000
    liquidation(rw, price=92_500, oracle_price=92_500, mark_price=92_500, cash=cash)
    assert check("liquidations_justified").status == "pass"
    strict = check("liquidations_justified", tolerance=0.0)
    assert strict.status == "fail"


def test_bogus_funding_loss_never_justifies(rw: RecordWriter, check: Check) -> None:
    # A short of 1 BTC at 90,000 with $4,500 collateral; its cached funding index is 9e8
    # and the stack's index was reset to 0 (the incident): a bogus loss of $900 that would
    # push it under maintenance. The checker does not count funding losses.
    setup(rw, ref=90_000)
    short = -ONE_BTC
    cash = 90_000 * ONE_BTC + 4_500_000_000
    liquidation(
        rw,
        account=21,
        size=short,
        cash=cash,
        positions={BTC: [short, 900_000_000]},
        funding_index=0,
    )
    v = check("liquidations_justified")
    assert v.status == "fail"
    assert v.violations[0].evidence["account"] == 21


def test_funding_gains_are_counted(rw: RecordWriter, check: Check) -> None:
    # underwater long (as in the justified case) with a large funding gain owed to it
    setup(rw, ref=90_000)
    liquidation(rw, positions={BTC: [ONE_BTC, 0]}, funding_index=-2_000_000_000)
    # at the adverse 89,100: equity 1.6e9 + gain (-S x (I - c) / 1e6 = 2e9) = 3.6e9
    # > maintenance 2.673e9
    v = check("liquidations_justified")
    assert v.status == "fail"


def test_cross_margin_uses_every_position(rw: RecordWriter, check: Check) -> None:
    # the BTC long alone is underwater, but a profitable ETH short keeps the account healthy
    setup(rw, ref=90_000, markets=(BTC, ETH))
    eth_short = -1_000_000  # shorted at P 5,000, reference 3,000 (adverse 3,030)
    cash = -92_000 * ONE_BTC + 4_500_000_000 + 5_000 * 1_000_000
    liquidation(rw, cash=cash, positions={BTC: [ONE_BTC, 0], ETH: [eth_short, 0]}, funding_index=0)
    # equity 1.6e9 (BTC at 89,100) + 5e9 - 3.03e9 = 3.57e9 > maintenance 2.673e9 + 0.0909e9
    v = check("liquidations_justified")
    assert v.status == "fail", "the ETH profit keeps the account above maintenance"
    assert set(obj(v.violations[0].evidence["reference_prices"])) == {BTC, ETH}


def test_blocked_only_is_checked_not_vacuous(rw: RecordWriter, check: Check) -> None:
    setup(rw)
    liquidation(rw, 30.0, kind="liquidation_blocked", price=0, guard="readiness_gate")
    v = check("liquidations_justified")
    assert v.status == "pass"
    assert v.checked["blocked_attempts"] == 1


def test_no_reference_price_is_vacuous(rw: RecordWriter, check: Check) -> None:
    rw.header()
    rw.oracle(1.0, ETH, 3_000)  # the oracle log has no BTC ticks at all
    liquidation(rw)
    v = check("liquidations_justified")
    assert v.status == "fail"
    assert "checked nothing" in v.reason
    assert v.details["unchecked_liquidations"] == 1


def test_reference_price_is_the_tick_at_or_before(rw: RecordWriter, check: Check) -> None:
    rw.header()
    rw.oracle(10.0, BTC, 90_000)
    rw.oracle(20.0, BTC, 200_000)  # after the liquidation: must not be used
    liquidation(rw, t=15.0)
    assert check("liquidations_justified").status == "pass"


def test_without_oracle_log_not_applicable(rw: RecordWriter, check: Check) -> None:
    rw.header()
    liquidation(rw)
    not_applicable(check("liquidations_justified"), "oracle_reference")
