"""chain_consistency: hashes, numbering, parents, rollbacks and replayed state roots.

State roots are computed here by hand with hashlib, independently of the checker's
ledger code, from the algorithm in docs/architecture.md."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from l2chaos.invariants.base import Verdict
from l2chaos.invariants.synth import RecordWriter
from l2chaos.rundir.json_types import JsonObject

from tests._support.records import first_deposit
from tests._support.verdicts import not_applicable, violation

Check = Callable[..., Verdict]
BTC = "BTC-USD-PERP"


def root(*leaves: str) -> str:
    """leaves as the text `{a}|{cash}|{positions}` in account order."""
    return (
        "0x"
        + hashlib.sha256(b"".join(hashlib.sha256(x.encode()).digest() for x in leaves)).hexdigest()
    )


R1 = root("1|100|")  # account 1 holds 100
R2 = root("1|90|", "2|10|")  # then pays 10 to account 2
R3 = root("-4|5|", "1|85|", f"2|10|{BTC}:3:7")  # dust (micro) and a position


def pay(rw: RecordWriter, number: int, seq: int, ledger: JsonObject) -> None:
    rw.event("transfer", block=number, block_seq=seq, host_s=float(seq), ledger=ledger)


def straight_chain(rw: RecordWriter) -> list[JsonObject]:
    rw.header()
    blocks = [rw.block(0, host_s=0.0, state_root=R1)]
    first_deposit(rw)
    blocks.append(rw.block(1, host_s=1.0, state_root=R2))
    pay(rw, 1, 1, {"cash": [[1, -10], [2, 10]]})
    blocks.append(rw.block(2, host_s=2.0, state_root=R2))  # an empty block
    blocks.append(rw.block(3, host_s=3.0, state_root=R3))
    pay(rw, 3, 3, {"cash": [[1, -5]], "pos": [[2, BTC, 3, 7]], "dust_micro": 5})
    return blocks


def test_consistent_chain_holds(rw: RecordWriter, check: Check) -> None:
    straight_chain(rw)
    v = check("chain_consistency", replay_roots="all")
    assert v.status == "pass", [x.message for x in v.violations]
    assert v.checked == {"blocks": 4, "links": 6, "rollbacks": 0, "roots": 4}


def test_every_root_by_default_the_final_one_on_request(rw: RecordWriter, check: Check) -> None:
    straight_chain(rw)
    v = check("chain_consistency")
    assert v.status == "pass"
    assert v.checked["roots"] == 4
    assert check("chain_consistency", replay_roots="final").checked["roots"] == 1


def test_tampered_hash_is_caught(rw: RecordWriter, check: Check) -> None:
    straight_chain(rw)
    rw.close()
    p = rw.dir / "audit/blocks.jsonl"
    lines = p.read_text().splitlines()
    lines[1] = (
        lines[1]
        .replace('"tx_count":0', '"tx_count":0,"x":1')
        .replace('"state_root":"' + R2, '"state_root":"0xdead')
    )
    p.write_text("\n".join(lines) + "\n")
    v = check("chain_consistency")
    assert v.status == "fail"
    assert any(
        "hash does not match its contents" in x.message and x.evidence["block"] == 1
        for x in v.violations
    )


def test_wrong_recorded_root_is_caught_by_the_replay(rw: RecordWriter, check: Check) -> None:
    rw.header()
    rw.block(0, host_s=0.0, state_root=root("1|101|"))  # the stack claims 101
    first_deposit(rw)
    v = check("chain_consistency")
    assert v.status == "fail"
    ev = v.violations[0].evidence
    assert ev["expected"] == R1
    assert ev["seen"] == root("1|101|")


def test_gap_and_broken_parent_are_caught(rw: RecordWriter, check: Check) -> None:
    rw.block(0, host_s=0.0)
    rw.block(2, host_s=1.0)  # skips 1
    rw.block(3, host_s=2.0, parent_hash="0x" + "ee" * 32)  # wrong parent
    v = check("chain_consistency")
    text = [x.message for x in v.violations]
    assert any("skips numbers after block 0" in m for m in text)
    assert any("follows block 2 without a rollback event" in m for m in text)
    assert any("canonical chain broken" in m for m in text)


def rollback_chain(
    rw: RecordWriter,
    *,
    declare: bool = True,
    restored: str | None = None,
    mark_orphans: bool = True,
) -> None:
    """Blocks 0..3, then 4 and 5 are rolled back to 3, and production continues at 4."""
    rw.header()
    b0 = rw.block(0, host_s=0.0, state_root=R1)
    first_deposit(rw)
    rw.block(1, host_s=1.0, state_root=R1)
    rw.block(2, host_s=2.0, state_root=R1)
    b3 = rw.block(3, host_s=3.0, state_root=R1)
    rw.block(4, host_s=4.0, state_root=R2, canonical=not mark_orphans)
    pay(rw, 4, 4, {"cash": [[1, -10], [2, 10]]})  # a payment that gets rolled back
    rw.block(5, host_s=5.0, state_root=R2, canonical=not mark_orphans)
    if declare:
        rw.fault(0, "chain.rollback", target="", inject_s=5.5, heal_s=5.5)
    rw.block(4, host_s=6.0, state_root=R1, parent_hash=str(b3["hash"]))
    rw.event(
        "rollback",
        block=4,
        block_seq=6,
        host_s=5.5,
        data={
            "to_block": 3,
            "to_hash": b3["hash"],
            "state_root": restored or R1,
            "orphaned": [4, 5],
        },
    )
    rw.block(5, host_s=7.0, state_root=R1)
    assert b0["number"] == 0


def test_declared_rollback_holds(rw: RecordWriter, check: Check) -> None:
    rollback_chain(rw)
    v = check("chain_consistency", replay_roots="rollbacks")
    assert v.status == "pass", [x.message for x in v.violations]
    assert v.checked["rollbacks"] == 1
    assert v.checked["roots"] == 1  # the root at the rollback target, from the replay
    assert v.details["orphaned_blocks"] == 2
    assert check("chain_consistency", replay_roots="all").status == "pass"


def test_rollback_to_the_head_orphans_nothing(rw: RecordWriter, check: Check) -> None:
    rw.header()
    rw.block(0, host_s=0.0, state_root=R1)
    first_deposit(rw)
    b1 = rw.block(1, host_s=1.0, state_root=R1)
    rw.fault(0, "chain.rollback", target="", inject_s=1.5, heal_s=1.5)
    rw.block(2, host_s=2.0, state_root=R1)
    rw.event(
        "rollback",
        block=2,
        block_seq=2,
        host_s=1.5,
        data={"to_block": 1, "to_hash": b1["hash"], "state_root": R1, "orphaned": []},
    )
    v = check("chain_consistency")
    assert v.status == "pass", [x.message for x in v.violations]
    assert v.checked["rollbacks"] == 1


def test_undeclared_rollback_is_caught(rw: RecordWriter, check: Check) -> None:
    rollback_chain(rw, declare=False)
    v = check("chain_consistency")
    assert v.status == "fail"
    assert "not declared by the scenario" in v.violations[0].message
    assert v.violations[0].evidence["to_block"] == 3


def test_restored_root_must_equal_the_recorded_one(rw: RecordWriter, check: Check) -> None:
    rollback_chain(rw, restored=R2)
    v = check("chain_consistency")
    bad = violation(v, "restored state root differs")
    assert bad.evidence == {**bad.evidence, "expected": R1, "seen": R2}


def test_orphans_still_canonical_are_caught(rw: RecordWriter, check: Check) -> None:
    rollback_chain(rw, mark_orphans=False)
    v = check("chain_consistency")
    assert any("not all marked non-canonical" in x.message for x in v.violations)


def test_non_canonical_block_without_rollback_is_caught(rw: RecordWriter, check: Check) -> None:
    rw.block(0, host_s=0.0)
    rw.block(1, host_s=1.0, canonical=False)
    v = check("chain_consistency")
    assert any("non-canonical but no rollback orphaned it" in x.message for x in v.violations)


def test_malformed_blocks_only_is_vacuous(rw: RecordWriter, check: Check) -> None:
    rw.append("audit/blocks.jsonl", {"seq": 0, "number": 0})
    v = check("chain_consistency")
    assert v.status == "fail"
    assert "checked nothing although the run had 1 blocks" in v.reason


def test_without_blocks_not_applicable(rw: RecordWriter, check: Check) -> None:
    rw.header()
    not_applicable(check("chain_consistency"), "blocks.jsonl")
