"""Triggers against the real reference stack on the local backend: a fault at
`{block: +N}` fires within one block of N, one chained after it fires after its heal,
one on a stream event fires after the event; result.json says when and at which block.
An absolute block the chain has already passed is bad input (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from l2chaos.runner import RunOptions, run_scenario

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCENARIO = """\
name: triggers
stack: {ref: perpdex, settings: {accounts: 20}}
duration: 20s
timeline:
  - name: at-block
    at: {block: +40}
    fault: network.latency
    target: ui-api->rpc
    for: 2s
    with: {latency: 50ms}
  - name: chained
    at: {after: at-block, phase: healed, delay: 1s}
    fault: network.latency
    target: ui-api->rpc
    for: 2s
    with: {latency: 20ms}
  - name: on-event
    at: {event: price_update, not_before: 8s}
    fault: network.latency
    target: rpc->sequencer
    for: 1s
    with: {latency: 10ms}
invariants: [chain_consistency]
"""


def test_block_after_and_event_triggers_fire_where_they_aim(tmp_path: Path) -> None:
    path = tmp_path / "triggers.yaml"
    path.write_text(SCENARIO)
    result = run_scenario(path, RunOptions(out_dir=tmp_path / "runs", progress=False))
    assert result.exit_code == 0, result.summary or result.error
    assert result.run_dir is not None
    baseline = json.loads((result.run_dir / "run.json").read_text())["baseline_block"]
    faults = {
        f["label"]: f for f in json.loads((result.run_dir / "result.json").read_text())["faults"]
    }

    at_block = faults["at-block"]
    assert at_block["trigger"]["text"] == "block +40"
    assert at_block["target_block"] == baseline + 40
    assert at_block["lateness_blocks"] in (0, 1)  # within one block of N
    assert at_block["block"] == baseline + 40 + at_block["lateness_blocks"]

    chained = faults["chained"]
    assert chained["trigger"]["kind"] == "after"
    assert chained["injected_at"] >= at_block["healed_at"] + 1.0

    on_event = faults["on-event"]
    assert on_event["trigger"]["text"] == "event price_update from 8s"
    assert on_event["injected_at"] >= 8.0
    assert on_event["lateness_blocks"] is not None
    assert on_event["lateness_blocks"] >= 0
    assert "on block +40, block" in result.summary


def test_an_absolute_block_already_passed_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "passed.yaml"
    path.write_text(SCENARIO.replace("{block: +40}", "{block: 1}"))
    result = run_scenario(path, RunOptions(out_dir=tmp_path / "runs", progress=False))
    assert result.exit_code == 2
    assert result.error is not None
    assert (
        f"{path}:6: timeline[0].at.block: block 1 is at or below the chain's height" in result.error
    )
    # the record agrees with the exit code: no verdict, and the reason is bad input
    assert result.run_dir is not None
    recorded = json.loads((result.run_dir / "result.json").read_text())
    assert recorded["exit_code"] == 2, recorded
