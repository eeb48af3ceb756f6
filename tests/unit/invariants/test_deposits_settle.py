"""deposits_settle on hand-made records: L1 locks, L2 credits in canonical and orphaned
blocks, a rollback event, and the bridge's final message state and event cursor."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from l2chaos.invariants.base import Verdict
from l2chaos.invariants.synth import RecordWriter

from tests._support.json_path import at, text

Check = Callable[..., Verdict]
DEP = 1_000_000_000


class Chain:
    """Blocks 0 (canonical), 1 (credited, then orphaned), the rollback and block 1 again."""

    def __init__(self, rw: RecordWriter) -> None:
        self.rw = rw
        rw.header()
        rw.touch("audit/events.jsonl")

    def lock(self, nonce: int) -> None:
        self.rw.bridge_l1("lock", seq=nonce, nonce=nonce, account=nonce, amount=DEP, host_s=0.0)

    def credit(self, nonce: int, *, block: int, seq: int) -> int:
        ev = self.rw.event(
            "deposit_credited",
            block=block,
            block_seq=seq,
            host_s=float(seq),
            data={"nonce": nonce, "account": nonce, "amount": DEP},
        )
        ev_seq = ev["seq"]
        assert isinstance(ev_seq, int)
        return ev_seq

    def block(self, number: int, seq: int, *, canonical: bool = True) -> None:
        self.rw.block(number, host_s=float(seq), canonical=canonical, seq=seq)

    def rollback(self, *, seq: int, orphaned: list[int]) -> int:
        ev = self.rw.event(
            "rollback",
            block=0,
            block_seq=seq,
            host_s=float(seq),
            data={"to_block": 0, "orphaned": orphaned},
        )
        ev_seq = ev["seq"]
        assert isinstance(ev_seq, int)
        return ev_seq

    def orphan_credit_1(self) -> int:
        """Block 0, block 1 crediting deposit 1, and the rollback that orphans block 1;
        the rollback event's seq."""
        self.block(0, 0)
        self.block(1, 1, canonical=False)
        self.credit(1, block=1, seq=1)
        return self.rollback(seq=2, orphaned=[1])

    def message(self, nonce: int, status: str, at: int | None = None, attempts: int = 1) -> None:
        self.rw.bridge_message(
            nonce, account=nonce, amount=DEP, status=status, l2_block_seq=at, attempts=attempts
        )


def story(rw: RecordWriter) -> Chain:
    """Deposit 1 credited in block 0; deposit 2 credited in block 1, which the rollback
    orphans (block seq 1), then credited again in the new block 1 (seq 2)."""
    c = Chain(rw)
    for n in (1, 2):
        c.lock(n)
    c.block(0, 0)
    c.credit(1, block=0, seq=0)
    c.block(1, 1, canonical=False)
    c.credit(2, block=1, seq=1)
    c.rollback(seq=2, orphaned=[1])
    c.block(1, 2)
    c.credit(2, block=1, seq=2)
    return c


def test_credited_once_and_credited_again_after_the_rollback(
    rw: RecordWriter, check: Check
) -> None:
    c = story(rw)
    c.message(1, "credited", 0)
    c.message(2, "credited", 2, attempts=2)
    rw.bridge_state(2 * DEP, event_cursor=99)
    v = check("deposits_settle")
    assert v.status == "pass", v.violations
    assert v.checked == {"credited_once": 2, "credited_again_after_rollback": 1, "pending": 0}


def test_an_orphaned_credit_kept_credited_on_the_bridge_is_lost(
    rw: RecordWriter, check: Check
) -> None:
    c = Chain(rw)
    c.lock(1)
    rb = c.orphan_credit_1()
    c.block(1, 2)
    c.message(1, "credited", 1)  # the bridge never put it back to pending
    rw.bridge_state(DEP, event_cursor=rb)
    v = check("deposits_settle")
    assert v.status == "fail"
    [x] = v.violations
    assert "not credited on the final chain" in x.message
    assert "rollback" in x.message
    assert x.evidence["nonce"] == 1
    assert x.evidence["rollback_event_seq"] == rb
    assert at(x.evidence, "seen", "status") == "credited"
    assert x.evidence["expected"] == {"status": "pending"}


def test_a_bridge_behind_the_rollback_is_lag_not_loss(rw: RecordWriter, check: Check) -> None:
    c = Chain(rw)
    c.lock(1)
    c.block(0, 0)
    c.block(1, 1, canonical=False)
    credit = c.credit(1, block=1, seq=1)
    c.rollback(seq=2, orphaned=[1])
    c.message(1, "credited", 1)
    rw.bridge_state(DEP, event_cursor=credit)  # the follower stopped before the rollback
    v = check("deposits_settle")
    assert v.status == "pass", v.violations
    assert v.checked["pending"] == 1
    assert text(at(v.details, "pending", 0, "reason")).startswith("the bridge had not yet applied")


def test_pending_after_an_orphaned_credit_is_fine_with_its_reason(
    rw: RecordWriter, check: Check
) -> None:
    c = Chain(rw)
    for n in (1, 2, 3):
        c.lock(n)
    c.orphan_credit_1()
    c.message(1, "pending", attempts=1)
    c.message(2, "pending", attempts=3)
    c.message(3, "pending", attempts=0)
    rw.bridge_state(3 * DEP, event_cursor=50)
    v = check("deposits_settle")
    assert v.status == "pass", v.violations
    assert v.checked["pending"] == 3
    assert v.details["pending_reasons"] == {
        "credited in a block a rollback orphaned; pending, to be credited again": 1,
        "relayed, not yet credited": 1,
        "not yet relayed": 1,
    }


def test_credited_twice_on_the_final_chain(rw: RecordWriter, check: Check) -> None:
    c = Chain(rw)
    c.lock(1)
    c.block(0, 0)
    c.credit(1, block=0, seq=0)
    c.block(1, 1)
    c.credit(1, block=1, seq=1)
    c.message(1, "credited", 1)
    v = check("deposits_settle")
    [x] = v.violations
    assert "credited 2 times on the final chain" in x.message
    assert x.evidence["blocks"] == [0, 1]


def test_a_credit_the_bridge_missed_after_reading_past_it(rw: RecordWriter, check: Check) -> None:
    c = Chain(rw)
    c.lock(1)
    c.lock(2)
    c.block(0, 0)
    first = c.credit(1, block=0, seq=0)
    c.credit(2, block=0, seq=0)
    c.message(1, "pending", attempts=1)  # the follower read past its credit
    c.message(2, "pending", attempts=1)  # ... but not this one: lag
    rw.bridge_state(2 * DEP, event_cursor=first)
    v = check("deposits_settle")
    [x] = v.violations
    assert x.evidence["nonce"] == 1
    assert "past that event" in x.message
    assert v.checked["credited_once"] == 1


def test_a_bridge_credit_the_chain_never_had(rw: RecordWriter, check: Check) -> None:
    c = Chain(rw)
    c.lock(1)
    c.block(0, 0)
    c.message(1, "credited", 0)
    v = check("deposits_settle")
    [x] = v.violations
    assert "the chain has no credit for it" in x.message


def test_a_lock_without_a_message(rw: RecordWriter, check: Check) -> None:
    c = Chain(rw)
    c.lock(1)
    c.block(0, 0)
    rw.touch("audit/bridge_messages.jsonl")
    v = check("deposits_settle")
    [x] = v.violations
    assert "has no bridge message" in x.message


def test_no_locks_is_no_work_and_missing_files_not_applicable(
    rw: RecordWriter, check: Check
) -> None:
    c = Chain(rw)
    c.block(0, 0)
    assert check("deposits_settle").status == "not_applicable"
    rw.touch("audit/bridge_l1.jsonl")
    rw.touch("audit/bridge_messages.jsonl")
    v = check("deposits_settle")
    assert v.status == "pass"
    assert v.no_work


@pytest.mark.parametrize("tx_nonce", [1, "1"])  # the reference stack's log writes "1"
def test_a_deposit_refused_as_consumed_without_a_credit_is_lost(
    rw: RecordWriter, check: Check, tx_nonce: int | str
) -> None:
    c = Chain(rw)
    c.lock(1)
    c.orphan_credit_1()
    c.block(1, 2)
    # the rollback forgot that the orphaned block consumed the message: relayed again,
    # the deposit is refused, and the bridge waits for a credit that never comes
    rw.tx("0xd1", block=1, block_seq=2, status="rejected", kind="deposit", account=1, nonce=1)
    rw.append(
        "audit/transactions.jsonl",
        {"hash": "0xd2", "block": 1, "block_seq": 1, "kind": "deposit", "account": 1,
         "status": "rejected", "reason": "message_already_consumed", "nonce": tx_nonce},
    )  # fmt: skip
    c.message(1, "pending", attempts=4)
    rw.bridge_state(DEP, event_cursor=99)
    assert check("deposits_settle").status == "pass"  # only an orphaned block refused it
    rw.append(
        "audit/transactions.jsonl",
        {"hash": "0xd3", "block": 1, "block_seq": 2, "kind": "deposit", "account": 1,
         "status": "rejected", "reason": "message_already_consumed", "nonce": tx_nonce},
    )  # fmt: skip
    v = check("deposits_settle")
    [x] = v.violations
    assert "refused it as already consumed" in x.message
    assert x.evidence["tx"] == "0xd3"
    assert x.evidence["attempts"] == 4
