"""The chain record of a JSON-RPC node (chain/*.jsonl): opaque-hash chain_consistency
and acknowledged_writes_durable for any protocol's writes."""

from __future__ import annotations

from collections.abc import Callable

from l2chaos.invariants.base import Verdict
from l2chaos.invariants.synth import RecordWriter

from tests._support.json_path import at

Check = Callable[..., Verdict]


def h(n: int, fork: str = "a") -> str:
    return "0x" + f"{fork}{n:063x}"[-64:]


def final_chain(
    rw: RecordWriter, upto: int, txs: dict[int, list[str]], fork_from: int = 99
) -> None:
    """Blocks 0..upto; from `fork_from` on, hashes of fork b."""
    for n in range(upto + 1):
        fork = "b" if n >= fork_from else "a"
        pfork = "b" if n - 1 >= fork_from else "a"
        rw.append(
            "chain/blocks.jsonl",
            {"number": n, "hash": h(n, fork), "parent_hash": h(n - 1, pfork) if n else "0x0",
             "tx_hashes": txs.get(n, [])},
        )  # fmt: skip


def head(rw: RecordWriter, t_s: float, n: int, fork: str = "a") -> None:
    rw.append("chain/heads.jsonl", {"t_ns": rw.t(t_s), "number": n, "hash": h(n, fork),
                                    "parent_hash": h(n - 1, fork)})  # fmt: skip


def heads(rw: RecordWriter, upto: int) -> None:
    """The probe saw heads 1..upto of fork a, head n at second n."""
    for n in range(1, upto + 1):
        head(rw, n, n)


def step_back(rw: RecordWriter, t_s: float, frm: int, to: int, fork: str = "b") -> None:
    rw.append("chain/reorgs.jsonl", {"t_ns": rw.t(t_s), "from_number": frm, "from_hash": h(frm),
              "to_number": to, "to_hash": h(to, fork), "common_ancestor": to - 1,
              "depth": frm - to + 1})  # fmt: skip


def transfer(
    rw: RecordWriter, op_id: str, t_s: float, tx: str, block: int, ok: bool = True
) -> None:
    rw.op(op_id, "transfer", invoke_s=t_s, done_s=t_s + 0.5, outcome="ok" if ok else "info",
          result={"tx_hash": tx, "block": block, "block_hash": h(block), "status": "success"},
          write=True)  # fmt: skip


def both_pass(check: Check, **counted: int) -> None:
    """acknowledged_writes_durable passes with these counts, and chain_consistency passes."""
    v = check("acknowledged_writes_durable")
    assert v.status == "pass", [x.message for x in v.violations]
    assert {k: v.checked[k] for k in counted} == counted
    assert check("chain_consistency").status == "pass"


def test_all_acknowledged_transactions_in_the_final_chain_pass(
    rw: RecordWriter, check: Check
) -> None:
    final_chain(rw, 10, {3: ["0xT1"], 5: ["0xt2"]})
    heads(rw, 10)
    transfer(rw, "w0-1", 2.5, "0xt1", 3)  # hashes compare case-insensitively
    transfer(rw, "w0-2", 4.5, "0xt2", 5)
    both_pass(check, durable=2)


def test_a_lost_acknowledged_transaction_fails_with_its_hash_and_block(
    rw: RecordWriter, check: Check
) -> None:
    final_chain(rw, 10, {3: ["0xt1"]}, fork_from=4)  # the node came back on another branch
    heads(rw, 6)
    step_back(rw, 7.0, 6, 4)
    transfer(rw, "w0-1", 2.5, "0xt1", 3)
    transfer(rw, "w0-2", 4.5, "0xt2", 5)  # in block 5 of the old branch: gone
    v = check("acknowledged_writes_durable")
    assert v.status == "fail"
    assert v.checked["durable"] == 1
    ev = v.violations[0].evidence
    assert (ev["tx_hash"], ev["block"], ev["op_id"]) == ("0xt2", 5, "w0-2")
    assert at(ev, "step_back", "to", "number") == 4
    c = check("chain_consistency")
    assert c.status == "fail"
    assert "stepped back from block 6 to 4 (depth 3) without a declared rollback" in (
        c.violations[0].message
    )


def test_a_declared_rollback_explains_the_step_and_the_lost_write(
    rw: RecordWriter, check: Check
) -> None:
    final_chain(rw, 10, {}, fork_from=4)
    heads(rw, 6)
    rw.fault(0, "chain.rollback", inject_s=6.8, heal_s=6.8, target="-",
             details={"declared": {"from_block": 6, "to_block": 3}})  # fmt: skip
    step_back(rw, 7.0, 6, 4)
    transfer(rw, "w0-2", 4.5, "0xt2", 5)
    both_pass(check, rolled_back=1)


def test_a_shallow_reorg_is_allowed_when_the_scenario_says_so(
    rw: RecordWriter, check: Check
) -> None:
    final_chain(rw, 10, {}, fork_from=6)
    heads(rw, 6)
    step_back(rw, 7.0, 6, 6)
    assert check("chain_consistency").status == "fail"
    assert check("chain_consistency", max_reorg_depth=1).status == "pass"


def test_a_silent_rewrite_of_a_seen_head_fails(rw: RecordWriter, check: Check) -> None:
    final_chain(rw, 10, {}, fork_from=3)  # block 3..5 replaced, and no step was seen
    heads(rw, 5)
    v = check("chain_consistency")
    assert v.status == "fail"
    assert "is not in the final chain" in v.violations[0].message


def test_a_broken_final_chain_fails(rw: RecordWriter, check: Check) -> None:
    final_chain(rw, 3, {})
    rw.append(
        "chain/blocks.jsonl", {"number": 4, "hash": h(4), "parent_hash": h(9), "tx_hashes": []}
    )
    v = check("chain_consistency")
    assert v.status == "fail"
    assert v.violations[0].evidence["block"] == 4
