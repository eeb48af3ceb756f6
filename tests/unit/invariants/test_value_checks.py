"""funding_continuity, value_flows and market_data_matches_oracle on a hand-made
record: a funding index that accrues by the documented formula, a fill with fees,
funding settlements with dust, a liquidation at the mark with a capped fee and an
insurance cover; then each way it can break, with the evidence named."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from l2chaos.invariants.base import Verdict, Violation
from l2chaos.invariants.synth import RecordWriter

from tests._support.verdicts import violation

BTC = "BTC-USD-PERP"
Check = Callable[..., Verdict]
FEES, INS, LIQ, DUST = -1, -2, -3, -4
I0 = 500_000_000
# premium 100 (mark 90,100, index 90,000): floor(100 x 1e6 x dt / 8 h)
I1 = I0 + 6_944  # dt 2 s
I2 = I1 + 3_472  # dt 1 s
DEP = 1_000_000_000
# account 3's deposit leaves it 300,000 of equity at the liquidation: the fee (800,000
# uncapped) is capped there
DEP3 = 10_336_004
Mutate = Callable[[str, dict[str, Any]], None]


def _nothing(kind: str, ev: dict[str, Any]) -> None:
    pass


def story(rw: RecordWriter, mutate: Mutate = _nothing) -> None:
    """Blocks 0..5; `mutate(name, event)` may change an event before it is written."""
    seq = 0

    def block(events: list[tuple[str, str, dict[str, Any], dict[str, Any] | None]]) -> None:
        nonlocal seq
        rw.block(seq, host_s=float(seq), seq=seq)
        for name, kind, data, ledger in events:
            ev: dict[str, Any] = {"kind": kind, "data": data, "ledger": ledger}
            mutate(name, ev)
            rw.event(ev["kind"], block=seq, block_seq=seq, host_s=float(seq),
                     data=ev["data"], ledger=ev["ledger"])  # fmt: skip
        seq += 1

    def price(name: str, p: int, mark: int, fi: int) -> tuple[str, str, dict[str, Any], None]:
        return (
            name,
            "price_update",
            {"market": BTC, "price": p, "mark_price": mark, "funding_index": fi},
            None,
        )

    def dep(acct: int, amount: int) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
        return (
            f"dep{acct}",
            "deposit_credited",
            {"account": acct, "amount": amount, "nonce": acct},
            {"cash": [[acct, amount]]},
        )

    def fill(
        name: str, buyer: int, seller: int, size: int, p: int, idx: int, sizes: tuple[int, int]
    ) -> Any:
        n = size * p
        taker, maker = -(-n * 4 // 10_000), -(-n // 10_000)
        data = {
            "market": BTC,
            "price": p,
            "size": size,
            "buyer": buyer,
            "seller": seller,
            "maker": seller,
            "taker": buyer,
            "maker_fee": maker,
            "taker_fee": taker,
        }
        ledger = {
            "cash": [[buyer, -n - taker], [seller, n - maker], [FEES, taker + maker]],
            "pos": [[buyer, BTC, sizes[0], idx], [seller, BTC, sizes[1], idx]],
        }
        return name, "fill", data, ledger

    def settle(name: str, acct: int, size: int, frm: int, to: int) -> Any:
        pay = -size * (to - frm)
        cash = pay // 1_000_000
        return name, "funding_settlement", {"account": acct, "market": BTC, "size": size,
                "index_from": frm, "index_to": to}, {"cash": [[acct, cash]],
                "pos": [[acct, BTC, size, to]], "dust_micro": pay - cash * 1_000_000}  # fmt: skip

    block([("genesis", "genesis", {"funding_index": {BTC: I0}}, None)])
    block([price("price1", 90_000, 90_100, I0)])
    block([dep(1, DEP), dep(2, DEP), dep(3, DEP3), dep(INS, DEP),
           fill("fill", 1, 2, 1000, 90_000, I0, (1000, -1000))])  # fmt: skip
    block([price("price3", 90_000, 90_100, I1), settle("settle1", 1, 1000, I0, I1),
           settle("settle2", 2, -1000, I0, I1),
           fill("fill3", 3, 2, 1000, 90_000, I1, (1000, -2000))])  # fmt: skip
    cash3 = DEP3 - 90_000_000 - 36_000
    liq = {"account": 3, "market": BTC, "size": 1000, "price": 80_000, "oracle_price": 80_000,
           "mark_price": 80_000, "guard": None, "cash": cash3, "positions": {BTC: [1000, I1]},
           "markets": {BTC: {"index_price": 80_000, "mark_price": 80_000, "funding_index": I2}},
           "equity": 300_000, "maintenance": 2_400_000, "fee": 300_000}  # fmt: skip
    block([price("price5", 80_000, 80_000, I2), settle("settle3", 3, 1000, I1, I2),
           ("liquidation", "liquidation", liq,
            {"cash": [[3, 80_000_000 - 300_000], [LIQ, -80_000_000], [INS, 300_000]],
             "pos": [[3, BTC, 0, I2], [LIQ, BTC, 1000, I2]]})])  # fmt: skip
    for s, fi, p in ((1, I0, 90_000), (3, I1, 90_000), (4, I2, 80_000)):
        rw.market_state(block_seq=s, block=s, market=BTC, index_price=p, funding_index=fi,
                        index_ts_ns=rw.t(float(s)))  # fmt: skip
    for t in range(6):
        rw.oracle(float(t), BTC, 90_000 if t < 4 else 80_000)


@pytest.fixture
def written(rw: RecordWriter) -> RecordWriter:
    rw.header()
    return rw


def test_the_story_holds(written: RecordWriter, check: Check) -> None:
    story(written)
    fc = check("funding_continuity")
    assert fc.status == "pass", [v.message for v in fc.violations]
    assert fc.checked == {"price_updates": 3, "settlements": 3, "positions": 6, "persisted_rows": 3}
    vf = check("value_flows")
    assert vf.status == "pass", [v.message for v in vf.violations]
    assert vf.checked == {"fills": 2, "liquidations": 1, "insurance": 0}
    mo = check("market_data_matches_oracle")
    assert mo.status == "pass"
    assert mo.checked == {"rows": 3}


def broken(
    rw: RecordWriter,
    check: Check,
    mutate: Mutate,
    checker: str,
    message: str,
    evidence: dict[str, Any],
) -> Violation:
    """The story with `mutate` applied fails `checker` with a violation saying `message`
    whose evidence includes `evidence`; that violation."""
    story(rw, mutate)
    v = check(checker)
    assert v.status == "fail"
    hit = violation(v, message)
    assert evidence.items() <= hit.evidence.items()
    return hit


def _set(name: str, path: tuple[Any, ...], value: Any) -> Mutate:
    def m(n: str, ev: dict[str, Any]) -> None:
        if n == name:
            target = ev
            for k in path[:-1]:
                target = target[k]
            target[path[-1]] = value

    return m


@pytest.mark.parametrize(
    ("mutate", "message", "evidence"),
    [
        # the January 2026 incident: the index reads back as 0 while prices are right
        (
            _set("price3", ("data", "funding_index"), 0),
            "reset to 0",
            {"expected": I1, "seen": 0, "difference": -I1},
        ),
        (
            _set("price3", ("data", "funding_index"), I1 + 5),
            "the formula gives",
            {"expected": I1, "seen": I1 + 5, "difference": 5},
        ),
        # rounded up instead of down (the long pays 6.944 quanta: floor is -7)
        (
            _set(
                "settle1",
                ("ledger",),
                {"cash": [[1, -6]], "pos": [[1, BTC, 1000, I1]], "dust_micro": -944_000},
            ),
            "rounded floor is -7",
            {"account": 1, "expected": -7, "seen": -6, "difference": 1},
        ),
        # the wrong side pays
        (
            _set("settle2", ("ledger", "cash"), [[2, -7]]),
            "the short paid funding although the index rose",
            {"account": 2, "expected": 6, "seen": -7},
        ),
        # settled to a stale index
        (
            _set("settle1", ("ledger", "pos"), [[1, BTC, 1000, I0 + 1]]),
            "but the market's funding index is",
            {"account": 1, "expected": I1, "seen": I0 + 1},
        ),
        # a new position cached at 0 (zero-sum, so no sum catches it)
        (
            _set("fill3", ("ledger", "pos"), [[3, BTC, 1000, 0], [2, BTC, -2000, I1]]),
            "cached at index 0",
            {"account": 3, "expected": I1, "seen": 0},
        ),
    ],
)
def test_funding_continuity_breaks(
    written: RecordWriter, check: Check, mutate: Mutate, message: str, evidence: dict[str, Any]
) -> None:
    hit = broken(written, check, mutate, "funding_continuity", message, evidence)
    assert "event_seq" in hit.evidence
    assert "block" in hit.evidence


def test_a_persisted_zero_funding_index_is_caught(rw: RecordWriter, check: Check) -> None:
    rw.header()
    story(rw)
    rw.block(5, host_s=5.0, seq=5)
    rw.market_state(block_seq=5, block=5, market=BTC, index_price=0, mark_price=0, funding_index=0,
                    index_ts_ns=0)  # fmt: skip
    v = check("funding_continuity")
    assert [x.evidence["seen"] for x in v.violations] == [0]
    assert "persisted funding index of BTC-USD-PERP is 0" in v.violations[0].message
    mo = check("market_data_matches_oracle")
    assert mo.status == "fail"
    assert "never zero" in mo.violations[0].message


@pytest.mark.parametrize(
    ("mutate", "message", "evidence"),
    [
        # a consistently wrong fee rate: the taker charged the maker rate (all still sums)
        (
            _set("fill", ("data", "taker_fee"), 9_000),
            "charged taker_fee 9000",
            {"account": 1, "expected": 36_000, "seen": 9_000, "difference": -27_000},
        ),
        # the fee goes to the insurance fund, not the fees account
        (
            _set("fill", ("ledger", "cash"), [[1, -90_036_000], [2, 89_991_000], [INS, 45_000]]),
            "account -1 moved 0, expected 45000",
            {"account": FEES, "expected": 45_000, "seen": 0},
        ),
        # the liquidation fee not capped at the remaining equity
        (
            _set("liquidation", ("data", "fee"), 800_000),
            "capped at the equity left: 300000",
            {"account": 3, "expected": 300_000, "seen": 800_000},
        ),
        # filled away from the mark
        (
            _set("liquidation", ("data", "price"), 79_000),
            "the market's mark is 80000",
            {"expected": 80_000, "seen": 79_000},
        ),
        # the liquidator vault does not take the position
        (
            _set("liquidation", ("ledger", "pos"), [[3, BTC, 0, I2]]),
            "the liquidator vault took 0",
            {"account": LIQ, "expected": 1000, "seen": 0},
        ),
    ],
)
def test_value_flows_break(
    written: RecordWriter, check: Check, mutate: Mutate, message: str, evidence: dict[str, Any]
) -> None:
    hit = broken(written, check, mutate, "value_flows", message, evidence)
    assert hit.evidence["event_seq"] is not None


def test_a_deficit_needs_a_cover_or_a_declared_shortfall(
    written: RecordWriter, check: Check
) -> None:
    # 400,000 less deposited: the account ends 100,000 negative after the (capped) fee
    def poorer(name: str, ev: dict[str, Any]) -> None:
        if name == "dep3":
            ev["data"]["amount"] -= 400_000
            ev["ledger"] = {"cash": [[3, DEP3 - 400_000]]}
        if name == "liquidation":
            ev["data"].update(cash=ev["data"]["cash"] - 400_000, fee=0)
            ev["ledger"]["cash"] = [[3, 80_000_000], [LIQ, -80_000_000], [INS, 0]]

    story(written, poorer)
    v = check("value_flows")
    assert [x.evidence["seen"] for x in v.violations] == [-100_000]
    assert "neither an insurance cover nor a declared shortfall" in v.violations[0].message


def test_index_and_mark_away_from_the_oracle(rw: RecordWriter, check: Check) -> None:
    rw.header()
    rw.market_state(
        block_seq=0, block=0, market=BTC, index_price=0, funding_index=I0, index_ts_ns=0
    )
    rw.oracle(1.0, BTC, 90_000)
    # the mark follows the book (10% off here): only the index is held to the oracle
    rw.market_state(block_seq=1, block=1, market=BTC, index_price=90_000, mark_price=99_000,
                    funding_index=I0, index_ts_ns=rw.t(1.5))  # fmt: skip
    rw.market_state(block_seq=2, block=2, market=BTC, index_price=81_000, mark_price=81_000,
                    funding_index=I0, index_ts_ns=rw.t(1.5))  # fmt: skip
    v = check("market_data_matches_oracle")
    assert v.status == "fail"
    assert v.checked == {"rows": 2}
    assert [x.evidence["block"] for x in v.violations] == [2]
    assert v.violations[0].evidence["price"] == "index"
    assert v.violations[0].evidence["difference"] == -9_000


def test_without_formulas_or_work(rw: RecordWriter, check: Check) -> None:
    rw.header(formulas=None)
    rw.block(0, host_s=0.0)
    rw.event("mode_change", block=0, block_seq=0, host_s=0.0, data={"mode": "normal"})
    assert check("funding_continuity").status == "not_applicable"
    assert check("value_flows").status == "not_applicable"
    rw.header()
    v = check("value_flows")
    assert v.status == "pass"
    assert v.no_work
    assert check("funding_continuity").no_work


def test_funding_continuity_fails_vacuously(rw: RecordWriter, check: Check) -> None:
    # a price update without a genesis index is only a baseline: nothing was checked
    rw.header()
    rw.block(0, host_s=0.0)
    rw.event("price_update", block=0, block_seq=0, host_s=0.0,
             data={"market": BTC, "price": 1, "mark_price": 1, "funding_index": 7})  # fmt: skip
    v = check("funding_continuity")
    assert v.status == "fail"
    assert "checked nothing" in v.reason
