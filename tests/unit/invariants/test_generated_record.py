"""Every checker together on a generated, consistent run record; then one lost fee."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from l2chaos.invariants.check import check_run
from l2chaos.invariants.simulate import generate_run


def digest(run: Path) -> dict[str, str]:
    return {
        str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run.rglob("*"))
        if p.is_file()
    }


def test_generated_record_holds_with_real_work(tmp_path: Path) -> None:
    run = tmp_path / "run"
    stats = generate_run(run, ops=2_000, blocks=600, seed=5)
    out = check_run(run)
    assert out.exit_code == 0, out.expectation.problems
    by = {v.name: v for v in out.verdicts}
    assert all(v.status == "pass" and not v.no_work for v in out.verdicts), {
        v.name: (v.status, v.reason) for v in out.verdicts
    }
    assert by["no_zero_price_liquidations"].checked["liquidations"] == stats.liquidations > 0
    assert by["acknowledged_writes_durable"].checked["rolled_back"] == stats.rolled_back_writes > 0
    assert by["acknowledged_writes_durable"].checked["durable"] == (
        stats.acked_writes - stats.rolled_back_writes
    )
    assert by["chain_consistency"].checked["blocks"] == stats.blocks
    assert by["chain_consistency"].checked["rollbacks"] == 1
    assert by["recoverability"].checked["faults"] == stats.faults == 5
    assert 0 < by["fund_conservation"].checked["fee_checks"] <= stats.fills  # orphaned ones skipped


def test_generation_is_deterministic(tmp_path: Path) -> None:
    generate_run(tmp_path / "a", ops=500, blocks=200, seed=9)
    generate_run(tmp_path / "b", ops=500, blocks=200, seed=9)
    a = digest(tmp_path / "a")
    b = digest(tmp_path / "b")
    a.pop("run.json")  # holds the directory name
    b.pop("run.json")
    assert a == b


def test_one_lost_fee_is_caught_three_ways(tmp_path: Path) -> None:
    run = tmp_path / "run"
    generate_run(run, ops=1_000, blocks=300, seed=5)
    path = run / "audit/events.jsonl"
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        ev = json.loads(line)
        if ev["kind"] == "fill":
            fee = next(d for a, d in ev["ledger"]["cash"] if a == -1)
            ev["ledger"]["cash"] = [[a, 0 if a == -1 else d] for a, d in ev["ledger"]["cash"]]
            lines[i] = json.dumps(ev)
            block = ev["block"]
            break
    path.write_text("\n".join(lines) + "\n")
    out = check_run(run)
    by = {v.name: v for v in out.verdicts}
    fc = by["fund_conservation"]
    assert fc.status == "fail"
    msgs = [x.message for x in fc.violations]
    assert any(f"charged fees of {fee} but the fees account was credited 0" in m for m in msgs)
    assert any(f"block {block}: fill event" in m and "changed" in m for m in msgs)
    assert any("snapshot differs" in m for m in msgs)  # the fees account's snapshot
    assert by["chain_consistency"].status == "fail"  # the recorded final root is not the replay's
    assert out.exit_code == 1
