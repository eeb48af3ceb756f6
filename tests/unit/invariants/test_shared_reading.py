"""The shared reading path (a filtered events read served from the log another checker
parsed, the history folded once) gives every checker the verdict it gets reading the
record on its own, on a generated record with planted violations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from l2chaos.invariants.check import _instantiate, check_run, run_checker
from l2chaos.invariants.record import AUDIT, RunRecord
from l2chaos.invariants.simulate import generate_run
from l2chaos.rundir.scenario import SCENARIO_JSON


def _plant(run: Path) -> None:
    """A lost fee, a liquidation at price 0, and three acknowledged orders missing."""
    path = run / AUDIT.EVENTS
    lines = path.read_text().splitlines()
    fee_lost = liquidated_at_zero = False
    for i, line in enumerate(lines):
        ev = json.loads(line)
        if ev["kind"] == "fill" and not fee_lost:
            ev["ledger"]["cash"] = [[a, 0 if a == -1 else d] for a, d in ev["ledger"]["cash"]]
            fee_lost = True
        elif ev["kind"] == "liquidation" and not liquidated_at_zero:
            ev["data"]["price"] = 0
            liquidated_at_zero = True
        lines[i] = json.dumps(ev)
    path.write_text("\n".join(lines) + "\n")
    txs = (run / AUDIT.TRANSACTIONS).read_text().splitlines()
    accepted = [i for i, t in enumerate(txs) if '"accepted"' in t][10:13]
    kept = [t for i, t in enumerate(txs) if i not in accepted]
    (run / AUDIT.TRANSACTIONS).write_text("\n".join(kept) + "\n")


def _summary(v: Any) -> tuple[Any, ...]:
    return (v.name, v.status, v.checked, [x.message for x in v.violations])


def test_shared_and_separate_reading_agree(tmp_path: Path) -> None:
    run = tmp_path / "run"
    generate_run(run, ops=3_000, blocks=600, seed=11)
    _plant(run)
    shared = check_run(run)
    uses = RunRecord(run).scenario.invariants
    alone = [run_checker(c, RunRecord(run)) for c in _instantiate(uses, run / SCENARIO_JSON)]
    assert [_summary(v) for v in shared.verdicts] == [_summary(v) for v in alone]
    failed = {v.name for v in shared.verdicts if v.status == "fail"}
    assert {"fund_conservation", "acknowledged_writes_durable"} <= failed, failed
    assert "no_zero_price_liquidations" in failed, failed


def test_filtered_events_read_is_the_same_from_file_and_memory(tmp_path: Path) -> None:
    run = tmp_path / "run"
    generate_run(run, ops=1_000, blocks=300, seed=3)
    kinds = ("rollback", "liquidation", "deposit_credited")
    record = RunRecord(run)
    from_file = list(record.events(kinds=kinds))
    needle = list(record.jsonl(AUDIT.EVENTS, contains=("rollback",)))
    everything = list(record.events())  # now parsed whole and kept
    assert list(record.events(kinds=kinds)) == from_file
    assert [e for e in record.jsonl(AUDIT.EVENTS, contains=("rollback",)) if e in needle] == needle
    assert {e.kind for e in from_file} == set(kinds)
    assert len(everything) > len(from_file)
