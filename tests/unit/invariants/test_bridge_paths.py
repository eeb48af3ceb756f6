"""The bridge and rollback path counters on hand-made records: what each counts, when,
the zero case, and a record without the bridge's files (no data: a rule fails)."""

from __future__ import annotations

from pathlib import Path

from l2chaos.invariants.bridge_paths import BRIDGE_COUNTERS
from l2chaos.invariants.check import check_run
from l2chaos.invariants.coverage import compute_coverage
from l2chaos.invariants.record import RunRecord
from l2chaos.invariants.synth import RecordWriter
from l2chaos.rundir.json_types import JsonObject

DEP = 1_000_000
RULE: JsonObject = {"during": "rollback", "fault_index": 0, "at_least": 1, "at_most": None,
        "profiles": None, "extend_ns": 1_000_000_000}  # fmt: skip


def lock(rw: RecordWriter, nonce: int, at_s: float) -> None:
    rw.bridge_l1("lock", seq=nonce, nonce=nonce, account=nonce, amount=DEP, host_s=at_s)


def credit(rw: RecordWriter, nonce: int, seq: int) -> None:
    data = {"nonce": nonce, "account": nonce, "amount": DEP}
    rw.event("deposit_credited", block=seq, block_seq=seq, host_s=float(seq), data=data)


def withdrawal(rw: RecordWriter, nonce: int, seq: int) -> None:
    data = {"nonce": nonce, "account": 9, "amount": DEP}
    rw.event("withdrawal", block=seq, block_seq=seq, host_s=float(seq), data=data)


def message(rw: RecordWriter, nonce: int, attempts: int, status: str = "credited") -> None:
    rw.bridge_message(nonce, account=nonce, amount=DEP, status=status, attempts=attempts)


def story(rw: RecordWriter) -> None:
    """Blocks seq 0-8 (1 s apart); the rollback at 5 s orphans seqs 3 and 4.

    Deposit 1: locked 0.5 s, credited seq 1 (before the rollback: not pending across).
    Deposit 2: locked 1 s, credited seq 3 (orphaned), again seq 6; 2 attempts, the
      second forced by the rollback (not relayed again).
    Deposit 3: locked 4.5 s, credited seq 7 after 3 attempts (relayed again, at 7 s).
    Deposit 4: locked 5.5 s, after the rollback, credited seq 8.
    Deposit 5: locked 4.8 s, still pending with 2 attempts (relayed again, at its lock).
    Withdrawals: nonce 20 in seq 2 (released at 8.5 s, after the rollback), nonce 21 in
    seq 4 (orphaned, dropped), nonce 22 in seq 1 released at 2.5 s (before it), nonce 23
    in seq 6 (after it) released at 8.6 s.
    """
    rw.header()
    rw.fault(0, "chain.rollback", inject_s=4.9, heal_s=5.0, target="-", label="rollback")
    for n in range(9):
        rw.block(n, host_s=float(n), seq=n, canonical=n not in (3, 4))
    for nonce, at in ((1, 0.5), (2, 1.0), (3, 4.5), (5, 4.8), (4, 5.5)):
        lock(rw, nonce, at)
    credit(rw, 1, 1)
    withdrawal(rw, 22, 1)
    withdrawal(rw, 20, 2)
    credit(rw, 2, 3)
    withdrawal(rw, 21, 4)
    rw.event("rollback", block=2, block_seq=5, host_s=5.0, data={"to_block": 2, "orphaned": [3, 4]})
    credit(rw, 2, 6)
    withdrawal(rw, 23, 6)
    credit(rw, 3, 7)
    credit(rw, 4, 8)
    rw.bridge_l1("release", seq=10, nonce=22, account=9, amount=DEP, host_s=2.5)
    rw.bridge_l1("release", seq=11, nonce=20, account=9, amount=DEP, host_s=8.5)
    rw.bridge_l1("release", seq=12, nonce=23, account=9, amount=DEP, host_s=8.6)
    for nonce, attempts in ((1, 1), (2, 2), (3, 3), (4, 1)):
        message(rw, nonce, attempts)
    message(rw, 5, 2, status="pending")
    for nonce, status in ((20, "released"), (21, "dropped"), (22, "released"), (23, "released")):
        rw.bridge_message(nonce, account=9, amount=DEP, status=status, attempts=0,
                          direction="l2_to_l1")  # fmt: skip


def test_each_path_counted_once_at_its_time(rw: RecordWriter, run_dir: Path) -> None:
    story(rw)
    rw.close()
    cov = compute_coverage(RunRecord(run_dir))
    assert {k: cov.totals[k] for k in BRIDGE_COUNTERS} == {
        "deposits_relayed_again": 2,  # deposits 3 and 5 (2's second attempt was the rollback's)
        "deposits_pending_across_rollback": 3,  # 2 (orphaned), 3 and 5 (not yet credited)
        "deposits_orphaned_by_rollback": 1,
        "withdrawals_orphaned_by_rollback": 1,
        "withdrawals_final_after_rollback": 1,  # 20: burned before it, released after
    }
    [w] = cov.windows
    assert w.counts["deposits_pending_across_rollback"] == 3  # at the rollback event

    def count(name: str, start_s: float, end_s: float) -> int | None:
        return cov.count(name, rw.t(start_s), rw.t(end_s))

    assert count("deposits_relayed_again", 4.7, 4.9) == 1  # deposit 5, at its lock

    assert count("deposits_relayed_again", 6.5, 7.5) == 1  # deposit 3, at its final credit
    assert count("withdrawals_final_after_rollback", 8.0, 9.0) == 1
    assert count("withdrawals_orphaned_by_rollback", 0.0, 4.9) == 0  # counted at 5 s


def test_a_run_without_rollbacks_or_retries_counts_zero(rw: RecordWriter, run_dir: Path) -> None:
    rw.header()
    for n in range(3):
        rw.block(n, host_s=float(n))
    lock(rw, 1, 0.5)
    credit(rw, 1, 1)
    message(rw, 1, 1)
    withdrawal(rw, 20, 1)
    rw.bridge_l1("release", seq=2, nonce=20, account=9, amount=DEP, host_s=2.5)
    rw.close()
    cov = compute_coverage(RunRecord(run_dir))
    assert {k: cov.totals[k] for k in BRIDGE_COUNTERS} == dict.fromkeys(BRIDGE_COUNTERS, 0)


def test_a_rollback_that_reached_nothing_fails_its_rule(rw: RecordWriter, run_dir: Path) -> None:
    """The rollback orphaned blocks without deposits: the rule says so, with what it saw."""
    rw.header()
    rw.fault(0, "chain.rollback", inject_s=4.9, heal_s=5.0, target="-", label="rollback")
    for n in range(6):
        rw.block(n, host_s=float(n), seq=n, canonical=n != 4)
    lock(rw, 1, 0.5)
    credit(rw, 1, 1)
    message(rw, 1, 1)
    rw.event("rollback", block=3, block_seq=5, host_s=5.0, data={"to_block": 3, "orphaned": [4]})
    rw.scenario(sometimes=[{**RULE, "count": "deposits_orphaned_by_rollback"}])
    rw.close()
    out = check_run(run_dir)
    assert out.sometimes is not None
    assert out.sometimes.status == "fail"
    [v] = out.sometimes.violations
    assert v.message.endswith("saw 0 in rollback"), v.message
    assert out.exit_code == 1


def test_without_the_bridge_files_a_rule_has_no_data(rw: RecordWriter, run_dir: Path) -> None:
    rw.header()
    rw.fault(0, "chain.rollback", inject_s=4.9, heal_s=5.0, target="-", label="rollback")
    rw.block(0, host_s=0.0)
    rw.event("rollback", block=0, block_seq=1, host_s=5.0, data={"to_block": 0, "orphaned": []})
    rw.scenario(sometimes=[{**RULE, "count": "withdrawals_final_after_rollback"}])
    rw.close()
    out = check_run(run_dir)
    assert "withdrawals_final_after_rollback" not in out.run_counts
    assert out.sometimes is not None
    [v] = out.sometimes.violations
    assert "has no data for 'withdrawals_final_after_rollback'" in v.message
