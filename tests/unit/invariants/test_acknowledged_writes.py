"""acknowledged_writes_durable: ok writes joined to the audit export by tx hash / nonce."""

from __future__ import annotations

from collections.abc import Callable

from l2chaos.invariants.base import Verdict
from l2chaos.invariants.synth import RecordWriter
from l2chaos.rundir.json_types import JsonObject

from tests._support.verdicts import not_applicable

Check = Callable[..., Verdict]


def order(
    rw: RecordWriter, n: int, *, t: float, tx: str | None, outcome: str = "ok", block: int = 1
) -> None:
    result: JsonObject = (
        {"order_id": n, "tx_hash": tx, "block": block, "status": "accepted"}
        if tx
        else {"order_id": n}
    )
    rw.op(
        f"w0-{n}",
        "place_order",
        invoke_s=t,
        done_s=t + 0.01,
        outcome=outcome,
        account=n,
        result=result,
    )


def chain(rw: RecordWriter) -> None:
    rw.block(0, host_s=0.0)
    rw.block(1, host_s=1.0)


def test_every_ok_write_is_in_the_chain(rw: RecordWriter, check: Check) -> None:
    chain(rw)
    for n in range(5):
        order(rw, n, t=1.0 + n, tx=f"0x{n:02x}")
        rw.tx(f"0x{n:02x}", block=1, block_seq=1)
    rw.op("w0-9", "deposit", invoke_s=2.0, done_s=2.1, account=9, result={"nonce": 77})
    rw.bridge_l1("lock", seq=1, nonce=77, account=9, amount=5, host_s=2.05)
    order(rw, 10, t=3.0, tx=None, outcome="fail")  # failed writes are not required
    order(rw, 11, t=3.0, tx=None, outcome="info")  # nor unknown ones
    rw.op("w0-12", "get_account", invoke_s=3.0, done_s=3.1)  # nor reads
    v = check("acknowledged_writes_durable")
    assert v.status == "pass", [x.message for x in v.violations]
    assert v.checked == {"durable": 6, "rolled_back": 0, "lost": 0}


def test_lost_write_is_caught_with_evidence(rw: RecordWriter, check: Check) -> None:
    chain(rw)
    order(rw, 1, t=1.0, tx="0xaa")
    rw.tx("0xaa", block=1, block_seq=1)
    order(rw, 2, t=2.0, tx="0xbb", block=1)  # acknowledged, never committed
    rw.touch("audit/transactions.jsonl")
    v = check("acknowledged_writes_durable")
    assert v.status == "fail"
    ev = v.violations[0].evidence
    assert ev["op_id"] == "w0-2"
    assert ev["tx_hash"] == "0xbb"
    assert ev["account"] == 2
    assert ev["seen"] == "absent"
    assert ev["t_ns"] == rw.t(2.01)


def test_acknowledged_but_rejected_is_caught(rw: RecordWriter, check: Check) -> None:
    chain(rw)
    order(rw, 1, t=1.0, tx="0xaa")
    rw.tx("0xaa", block=1, block_seq=1, status="rejected")
    v = check("acknowledged_writes_durable")
    assert v.status == "fail"
    assert v.violations[0].evidence["seen"] == "rejected"


def test_orphaned_without_declared_rollback_is_lost(rw: RecordWriter, check: Check) -> None:
    rw.block(0, host_s=0.0)
    rw.block(1, host_s=1.0, canonical=False)
    rw.block(1, host_s=2.0, parent_hash=None)
    order(rw, 1, t=1.0, tx="0xaa")
    rw.tx("0xaa", block=1, block_seq=1)
    v = check("acknowledged_writes_durable")
    assert v.status == "fail"
    assert "orphaned block without a declared rollback" in v.violations[0].message


def test_declared_rollback_counts_as_rolled_back(rw: RecordWriter, check: Check) -> None:
    rw.block(0, host_s=0.0)
    rw.block(1, host_s=1.0, canonical=False)
    rw.block(1, host_s=2.0)
    order(rw, 1, t=1.0, tx="0xaa")
    rw.tx("0xaa", block=1, block_seq=1)
    order(rw, 2, t=2.5, tx="0xbb", block=1)
    rw.tx("0xbb", block=1, block_seq=2)
    rw.fault(0, "chain.rollback", target="", inject_s=1.5, heal_s=1.5)
    rw.event(
        "rollback",
        block=1,
        block_seq=2,
        host_s=1.5,
        data={"to_block": 0, "to_hash": "0x", "state_root": "0x", "orphaned": [1]},
    )
    v = check("acknowledged_writes_durable")
    assert v.status == "pass", [x.message for x in v.violations]
    assert v.checked == {"durable": 1, "rolled_back": 1, "lost": 0}


def test_resubmitted_tx_found_canonical_after_rollback_is_durable(
    rw: RecordWriter, check: Check
) -> None:
    rw.block(0, host_s=0.0)
    rw.block(1, host_s=1.0, canonical=False)
    rw.block(1, host_s=2.0)
    order(rw, 1, t=1.0, tx="0xaa")
    rw.tx("0xaa", block=1, block_seq=1)  # orphaned ...
    rw.tx("0xaa", block=1, block_seq=2)  # ... and included again
    assert check("acknowledged_writes_durable").checked["durable"] == 1


def test_ok_write_without_an_id_is_caught(rw: RecordWriter, check: Check) -> None:
    chain(rw)
    rw.touch("audit/transactions.jsonl")
    order(rw, 1, t=1.0, tx=None)
    v = check("acknowledged_writes_durable")
    assert v.status == "fail"
    assert "without a tx_hash or nonce" in v.violations[0].message


def test_deposit_without_lock_is_caught(rw: RecordWriter, check: Check) -> None:
    chain(rw)
    rw.touch("audit/transactions.jsonl")
    rw.op("w0-9", "deposit", invoke_s=2.0, done_s=2.1, account=9, result={"nonce": 77})
    rw.bridge_l1("lock", seq=1, nonce=78, account=9, amount=5, host_s=2.05)
    v = check("acknowledged_writes_durable")
    assert v.status == "fail"
    assert v.violations[0].evidence["nonce"] == 77


def test_deposits_without_bridge_log_are_vacuous(rw: RecordWriter, check: Check) -> None:
    chain(rw)
    rw.touch("audit/transactions.jsonl")
    rw.op("w0-9", "deposit", invoke_s=2.0, done_s=2.1, account=9, result={"nonce": 77})
    v = check("acknowledged_writes_durable")
    assert v.status == "fail"
    assert "checked nothing although the run had 1 acknowledged writes" in v.reason


def test_writes_none_acknowledged_fail(rw: RecordWriter, check: Check) -> None:
    chain(rw)
    rw.touch("audit/transactions.jsonl")
    order(rw, 1, t=1.0, tx=None, outcome="info")
    v = check("acknowledged_writes_durable")
    assert v.status == "fail"
    assert v.reason == "none of the 1 operations the run gave it succeeded"


def test_no_writes_is_no_work(rw: RecordWriter, check: Check) -> None:
    chain(rw)
    rw.touch("audit/transactions.jsonl")
    rw.op("r0", "get_account", invoke_s=1.0, done_s=1.1)
    v = check("acknowledged_writes_durable")
    assert v.status == "pass"
    assert v.no_work


def test_without_transactions_not_applicable(rw: RecordWriter, check: Check) -> None:
    order(rw, 1, t=1.0, tx="0xaa")
    not_applicable(check("acknowledged_writes_durable"), "transactions.jsonl")
