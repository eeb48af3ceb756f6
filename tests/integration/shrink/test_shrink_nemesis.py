"""A deliberately failing nemesis run (a database restart race among harmless latency
faults, on `vulnerable`, expecting every invariant to hold) shrinks to the restart race,
and the minimal scenario fails on its own, without the nemesis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from l2chaos.runner import RunOptions, run_scenario
from l2chaos.shrink import ShrinkOptions, shrink_run

# Seven runs of about a minute each (the nemesis run, five candidates, the replay).
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(2400)]

SCENARIO = Path(__file__).parent / "nemesis-race.yaml"


def failed(run_dir: Path) -> list[str]:
    result = json.loads((run_dir / "result.json").read_text())
    return [
        i["name"] for i in result["invariants"] if i["status"] == "fail" and i["violation_count"]
    ]


def test_a_failing_nemesis_run_shrinks_to_the_fault_that_causes_it(tmp_path: Path) -> None:
    original = run_scenario(SCENARIO, RunOptions(out_dir=tmp_path / "runs", progress=False))
    assert original.exit_code == 1, original.summary or original.error
    assert original.run_dir is not None
    assert failed(original.run_dir) == ["no_zero_price_liquidations"]

    shrunk = shrink_run(original.run_dir, ShrinkOptions(max_runs=5, progress=False))
    assert shrunk.exit_code == 0, shrunk.summary
    assert shrunk.minimal is not None
    assert shrunk.bundle is not None
    minimal = yaml.safe_load(shrunk.minimal.read_text())
    faults = [e["fault"] for e in minimal["timeline"]]
    assert "process.restart_race" in faults
    assert len(faults) <= 2
    assert minimal["stack"]["profile"] == "vulnerable"
    assert minimal["seed"] == 4
    bundle = json.loads(shrunk.bundle.read_text())
    assert bundle["faults"]["fired"] >= 3  # the draws that fired, without the nemesis
    assert bundle["faults"]["minimal"] == len(faults)
    assert bundle["invariants"] == ["no_zero_price_liquidations"]
    assert bundle["search"]["runs"] <= 5
    log = [
        json.loads(x) for x in (original.run_dir / "shrink" / "log.jsonl").read_text().splitlines()
    ]
    assert log[0]["outcome"] == "fails"  # the explicit timeline, without the nemesis, failed again

    replay = run_scenario(shrunk.minimal, RunOptions(out_dir=tmp_path / "replay", progress=False))
    assert replay.exit_code == 1, replay.summary or replay.error
    assert replay.run_dir is not None
    assert failed(replay.run_dir) == ["no_zero_price_liquidations"]
