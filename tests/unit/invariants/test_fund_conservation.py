"""fund_conservation on a hand-made ledger: deposits through the bridge, a fill with
fees, a funding settlement with a dust remainder, a withdrawal released on L1."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from l2chaos.invariants.base import Verdict
from l2chaos.invariants.synth import RecordWriter

from tests._support.json_path import at, text
from tests._support.records import first_deposit
from tests._support.verdicts import not_applicable, violation

BTC = "BTC-USD-PERP"
Check = Callable[..., Verdict]
FEES, INS, DUST = -1, -2, -4
DEP = 1_000_000_000  # $1,000 each
IDX0 = 500_000_000
IDX1 = IDX0 + 1_234_567


class Ledger:
    """Writes the canonical story block by block, with matching snapshots."""

    def __init__(self, rw: RecordWriter) -> None:
        self.rw = rw
        self.cash: dict[int, int] = {}
        self.pos: dict[int, dict[str, list[int]]] = {}
        self.dust = 0

    def block(
        self,
        number: int,
        seq: int,
        events: list[dict[str, Any]],
        *,
        canonical: bool = True,
        snapshots: bool = True,
    ) -> None:
        self.rw.block(number, host_s=float(seq), canonical=canonical, seq=seq)
        touched: set[int] = set()
        for e in events:
            ledger = e.get("ledger")
            self.rw.event(
                e["kind"],
                block=number,
                block_seq=seq,
                host_s=float(seq),
                data=e.get("data"),
                ledger=ledger,
            )
            if ledger and canonical:
                for a, d in ledger.get("cash", []):
                    self.cash[a] = self.cash.get(a, 0) + d
                    touched.add(a)
                for a, m, size, idx in ledger.get("pos", []):
                    self.pos.setdefault(a, {})[m] = [size, idx]
                    touched.add(a)
                if ledger.get("dust_micro"):
                    self.dust += ledger["dust_micro"]
                    touched.add(DUST)
        if snapshots and canonical:
            for a in sorted(touched):
                cash = self.dust if a == DUST else self.cash.get(a, 0)
                self.rw.balance(
                    block_seq=seq, block=number, account=a, cash=cash, positions=self.pos.get(a, {})
                )


def deposit(account: int, nonce: int, amount: int = DEP) -> dict[str, Any]:
    return {
        "kind": "deposit_credited",
        "data": {"nonce": nonce, "account": account, "amount": amount},
        "ledger": {"cash": [[account, amount]], "pos": [], "dust_micro": 0},
    }


def fill(
    maker_fee: int = 9_000,
    taker_fee: int = 36_000,
    fee_credit: int | None = None,
    seller_size: int = -1_000,
) -> dict[str, Any]:
    notional = 1_000 * 90_000
    credit = maker_fee + taker_fee if fee_credit is None else fee_credit
    return {
        "kind": "fill",
        "data": {
            "market": BTC,
            "price": 90_000,
            "size": 1_000,
            "buyer": 1,
            "seller": 2,
            "maker": 2,
            "taker": 1,
            "maker_fee": maker_fee,
            "taker_fee": taker_fee,
            "mode": "normal",
        },
        "ledger": {
            "cash": [[1, -notional - taker_fee], [2, notional - maker_fee], [FEES, credit]],
            "pos": [[1, BTC, 1_000, IDX0], [2, BTC, seller_size, IDX0]],
            "dust_micro": 0,
        },
    }


def settlement() -> dict[str, Any]:
    # payment = -S x (I - c) = -1000 x 1,234,567 = -1,234,567,000 micro:
    # floor to quanta -1,235 (=-1,235,000,000 micro), remainder 433,000 micro to dust
    return {
        "kind": "funding_settlement",
        "data": {"account": 1, "market": BTC},
        "ledger": {"cash": [[1, -1_235]], "pos": [[1, BTC, 1_000, IDX1]], "dust_micro": 433_000},
    }


def withdrawal(account: int, nonce: int, amount: int) -> dict[str, Any]:
    return {
        "kind": "withdrawal",
        "data": {"nonce": nonce, "account": account, "amount": amount},
        "ledger": {"cash": [[account, -amount]], "pos": [], "dust_micro": 0},
    }


def story(
    rw: RecordWriter, *, fill_event: dict[str, Any] | None = None, bridge: bool = True
) -> Ledger:
    rw.header()
    lg = Ledger(rw)
    lg.block(0, 0, [deposit(1, 1), deposit(2, 2), deposit(INS, 3)])
    lg.block(1, 1, [fill_event or fill()])
    lg.block(2, 2, [settlement()])
    lg.block(3, 3, [withdrawal(2, 10, 100_000_000)])
    if bridge:
        for n, (acct, amount) in enumerate([(1, DEP), (2, DEP), (INS, DEP)], start=1):
            rw.bridge_l1("lock", seq=n, nonce=n, account=acct, amount=amount, host_s=0.0)
        rw.bridge_l1("release", seq=10, nonce=10, account=2, amount=100_000_000, host_s=5.0)
        rw.bridge_state(3 * DEP - 100_000_000)
    return lg


def messages(v: Verdict) -> list[str]:
    return [x.message for x in v.violations]


def test_consistent_ledger_holds(rw: RecordWriter, check: Check) -> None:
    story(rw)
    v = check("fund_conservation")
    assert v.status == "pass", messages(v)
    assert v.checked == {
        "events": 6,
        "blocks": 4,
        "snapshots": 9,
        "fee_checks": 1,
        "bridge_credits": 3,
        "bridge_releases": 1,
    }
    assert v.details["deposits_minus_withdrawals"] == 3 * DEP - 100_000_000
    assert v.details["escrow"] == 3 * DEP - 100_000_000


def test_lost_fee_is_caught(rw: RecordWriter, check: Check) -> None:
    # the trader pays the fee, the fees account is never credited (the test-only switch)
    story(rw, fill_event=fill(fee_credit=0))
    v = check("fund_conservation")
    assert v.status == "fail"
    text = messages(v)
    assert any("charged fees of 45000 but the fees account was credited 0" in m for m in text)
    identity = next(x for x in v.violations if "changed" in x.message)
    assert identity.evidence["block"] == 1
    assert identity.evidence["difference"] == -45_000 * 1_000_000
    assert identity.evidence["accounts"] == [FEES, 1, 2]


def test_open_interest_not_netting_is_caught(rw: RecordWriter, check: Check) -> None:
    story(rw, fill_event=fill(seller_size=-900))
    v = check("fund_conservation")
    oi = violation(v, "open interest")
    assert oi.evidence["market"] == BTC
    assert oi.evidence["seen"] == 100


def test_snapshot_that_differs_from_the_replay_is_caught(rw: RecordWriter, check: Check) -> None:
    story(rw)
    rw.balance(block_seq=3, block=3, account=1, cash=12345, positions={})
    v = check("fund_conservation")
    snap = [x for x in v.violations if "snapshot" in x.message]
    assert len(snap) == 1
    assert snap[0].evidence["account"] == 1
    assert at(snap[0].evidence, "seen", "cash") == 12345
    assert at(snap[0].evidence, "expected", "cash") == DEP - 90_000_000 - 36_000 - 1_235


def test_dust_snapshot_is_in_micro_quanta(rw: RecordWriter, check: Check) -> None:
    story(rw)
    rw.close()
    lines = (rw.dir / "audit/balances.jsonl").read_text().splitlines()
    assert any('"account":-4,"cash":433000' in line for line in lines)


# the insurance fund covers account 2's loss of DEP + 5 with the DEP it holds
COVER_PAST_THE_FUND = {
    "kind": "insurance_cover",
    "data": {"account": 2},
    "ledger": {"cash": [[INS, -DEP - 5], [2, DEP + 5]], "pos": [], "dust_micro": 0},
}


def test_negative_insurance_fund_needs_a_declared_shortfall(rw: RecordWriter, check: Check) -> None:
    story(rw)
    lg = Ledger(rw)
    lg.block(4, 4, [COVER_PAST_THE_FUND], snapshots=False)
    v = check("fund_conservation")
    neg = [x for x in v.violations if "insurance fund is negative" in x.message]
    assert len(neg) == 1
    assert neg[0].evidence["seen"] == -5
    assert neg[0].evidence["block"] == 4


def test_declared_shortfall_allows_a_negative_fund(rw: RecordWriter, check: Check) -> None:
    story(rw)
    lg = Ledger(rw)
    lg.block(
        4,
        4,
        [COVER_PAST_THE_FUND, {"kind": "insurance_shortfall", "data": {"amount": 5}}],
        snapshots=False,
    )
    assert check("fund_conservation").status == "pass"


def test_credit_without_lock_and_double_credit_are_caught(rw: RecordWriter, check: Check) -> None:
    story(rw)
    lg = Ledger(rw)
    lg.block(4, 4, [deposit(5, 99, 7), deposit(1, 1)], snapshots=False)
    v = check("fund_conservation")
    text = messages(v)
    assert any("(nonce 99) has no L1 lock" in m for m in text)
    assert any("deposit nonce 1 was credited 2 times" in m for m in text)


def test_credit_that_differs_from_its_lock_is_caught(rw: RecordWriter, check: Check) -> None:
    rw.header()
    Ledger(rw).block(0, 0, [deposit(1, 1, amount=500)])
    rw.bridge_l1("lock", seq=1, nonce=1, account=1, amount=400, host_s=0.0)
    v = check("fund_conservation")
    bad = violation(v, "does not match its L1 lock")
    assert bad.evidence["expected"] == {"account": 1, "amount": 400}


def test_release_of_a_rolled_back_withdrawal_is_caught(rw: RecordWriter, check: Check) -> None:
    rw.header()
    lg = Ledger(rw)
    lg.block(0, 0, [deposit(1, 1)])
    lg.block(1, 1, [withdrawal(1, 10, 100)], canonical=False)  # orphaned by a rollback
    lg.block(1, 2, [])
    rw.bridge_l1("lock", seq=1, nonce=1, account=1, amount=DEP, host_s=0.0)
    rw.bridge_l1("release", seq=2, nonce=10, account=1, amount=100, host_s=2.0)
    v = check("fund_conservation")
    text = messages(v)
    assert any("(nonce 10) has no canonical L2 withdrawal" in m for m in text)
    assert any("L1 escrow != N + pending" in m for m in text)


def test_deposit_credited_in_an_orphaned_block_is_pending_again(
    rw: RecordWriter, check: Check
) -> None:
    rw.header()
    lg = Ledger(rw)
    lg.block(0, 0, [deposit(1, 1)])
    lg.block(1, 1, [deposit(2, 2)], canonical=False)  # credited, then rolled back
    lg.block(1, 2, [])
    rw.bridge_l1("lock", seq=1, nonce=1, account=1, amount=DEP, host_s=0.0)
    rw.bridge_l1("lock", seq=2, nonce=2, account=2, amount=DEP, host_s=0.5)
    rw.bridge_state(2 * DEP)
    v = check("fund_conservation")
    assert v.status == "pass", messages(v)
    assert v.details["pending_deposits"] == DEP
    assert v.details["orphaned_events_skipped"] == 1
    # ... and re-crediting it later in the canonical chain is also fine
    lg.block(2, 3, [deposit(2, 2)])
    v = check("fund_conservation")
    assert v.status == "pass", messages(v)
    assert v.details["pending_deposits"] == 0


def test_reported_escrow_is_compared_never_trusted(rw: RecordWriter, check: Check) -> None:
    story(rw)
    rw.bridge_state(42)
    v = check("fund_conservation")
    bad = violation(v, "reports an escrow balance")
    assert bad.evidence == {"expected": 3 * DEP - 100_000_000, "seen": 42}


def test_withdrawal_without_ledger_is_caught(rw: RecordWriter, check: Check) -> None:
    rw.header()
    lg = Ledger(rw)
    lg.block(
        0,
        0,
        [deposit(1, 1), {"kind": "withdrawal", "data": {"nonce": 3, "account": 1, "amount": 5}}],
    )
    v = check("fund_conservation")
    assert any("without a ledger" in m for m in messages(v))


def test_malformed_ledger_is_a_violation(rw: RecordWriter, check: Check) -> None:
    rw.header()
    rw.block(0, host_s=0.0)
    rw.event("fill", block=0, block_seq=0, host_s=0.0, data={}, ledger={"cash": [[1, "ten"]]})
    v = check("fund_conservation")
    assert any("malformed ledger" in m for m in messages(v))


def test_no_canonical_block_is_vacuous(rw: RecordWriter, check: Check) -> None:
    rw.header()
    rw.touch("audit/blocks.jsonl")  # the export lost every block
    first_deposit(rw, amount=5)
    v = check("fund_conservation")
    assert v.status == "fail"
    assert "checked nothing" in v.reason


def test_without_header_not_applicable(rw: RecordWriter, check: Check) -> None:
    rw.event("genesis", block=0, block_seq=0, host_s=0.0)
    not_applicable(check("fund_conservation"), "header.json")


def test_without_bridge_log_the_rest_is_still_checked(rw: RecordWriter, check: Check) -> None:
    story(rw, bridge=False)
    v = check("fund_conservation")
    assert v.status == "pass"
    assert "bridge_l1.jsonl is missing" in text(v.details["bridge"])
