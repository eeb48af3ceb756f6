"""`at:` triggers: a time, a block height, another entry, an event. What can never
fire is rejected before anything starts, naming file, line and field."""

from __future__ import annotations

import textwrap

import pytest
from l2chaos.errors import ScenarioError
from l2chaos.scenario import Scenario, load_scenario_text
from l2chaos.triggers import AfterFault, AtBlock, AtTime, OnEvent

HEAD = """\
name: trig
stack: perpdex
duration: 60s
timeline:
"""


def load(entries: str, time_scale: float | None = None) -> Scenario:
    text = HEAD + textwrap.indent(textwrap.dedent(entries), "  ")
    return load_scenario_text(text, "s.yaml", time_scale=time_scale)


def error_of(entries: str) -> str:
    with pytest.raises(ScenarioError) as info:
        load(entries)
    return str(info.value)


def test_each_form_parses_and_only_times_and_delays_scale() -> None:
    sc = load(
        """\
        - {name: a, at: 10s, fault: process.kill, target: rpc, for: 4s}
        - {name: b, at: {block: 1200}, fault: process.kill, target: bridge, for: 2s}
        - {name: c, at: {block: +50}, fault: network.latency, target: ui-api->rpc, for: 2s}
        - {name: d, at: {after: a, phase: injected, delay: 2s}, fault: oracle.stale, for: 2s}
        - {name: e, at: {after: a}, fault: process.pause, target: oracle, for: 2s}
        - {name: f, at: {event: funding_tick, delay: 1s, not_before: 20s}, fault: bridge.relayer_stall, for: 2s}
        - {name: g, at: {event: not_ready.db}, fault: network.down, target: rpc->db, for: 2s}
        """,
        time_scale=0.5,
    )
    triggers = {u.label: u.trigger for u in sc.timeline}
    assert triggers["a"] == AtTime(5_000_000_000)
    assert triggers["b"] == AtBlock(1200, relative=False)
    assert triggers["c"] == AtBlock(50, relative=True)  # blocks never scale
    assert triggers["d"] == AfterFault("a", "injected", 1_000_000_000)
    assert triggers["e"] == AfterFault("a", "healed", 0)
    assert triggers["f"] == OnEvent("funding_tick", 500_000_000, 10_000_000_000)
    assert triggers["g"] == OnEvent("not_ready.db")
    assert [u.timed for u in sc.timeline] == [True, False, False, False, False, False, False]
    assert sc.resolved().timeline[2]["trigger"] == {
        "kind": "block",
        "block": 50,
        "relative": True,
    }


def test_default_labels_name_the_trigger() -> None:
    sc = load(
        """\
        - {at: 12s, fault: process.kill, target: rpc, for: 1s}
        - {at: {block: +5}, fault: process.kill, target: bridge, for: 1s}
        """,
        time_scale=0.5,
    )
    assert [u.label for u in sc.timeline] == ["process.kill@12s", "process.kill@block+5"]


def test_triggered_entries_may_share_a_resource_they_wait_at_run_time() -> None:
    sc = load(
        """\
        - {name: a, at: 10s, fault: process.kill, target: rpc, for: 20s}
        - {name: b, at: {block: +10}, fault: process.kill, target: rpc, for: 2s}
        """
    )
    assert len(sc.timeline) == 2


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        (
            "- {at: {after: nobody}, fault: process.kill, target: rpc, for: 1s}",
            "s.yaml:5: timeline[0].at.after: no timeline entry is named 'nobody'",
        ),
        (
            "- {name: a, at: {after: a}, fault: process.kill, target: rpc, for: 1s}",
            "timeline[0].at.after: an entry cannot wait for itself",
        ),
        (
            """\
            - {name: a, at: {after: c}, fault: process.kill, target: rpc, for: 1s}
            - {name: b, at: {after: a}, fault: process.kill, target: bridge, for: 1s}
            - {name: c, at: {after: b}, fault: process.kill, target: oracle, for: 1s}
            """,
            "timeline[0].at.after: `after` references form a cycle: a -> c -> b -> a",
        ),
        (
            """\
            - {name: a, at: 40s, fault: process.kill, target: rpc, for: 15s}
            - {name: b, at: {after: a, delay: 5s}, fault: process.kill, target: bridge, for: 1s}
            """,
            "timeline[1].at: can never fire: 5s after a healed is at the earliest 1m after time "
            "zero, at or after the end of the run (1m)",
        ),
        (
            "- {at: {event: funding_tick, not_before: 1m}, fault: process.kill, target: rpc, for: 1s}",
            "can never fire: event funding_tick from 1m is at the earliest 1m",
        ),
        (
            "- {at: {block: 0}, fault: process.kill, target: rpc, for: 1s}",
            "timeline[0].at.block: expected a block height from 1 (e.g. 1200), or +N blocks",
        ),
        (
            "- {at: {block: '+x'}, fault: process.kill, target: rpc, for: 1s}",
            "timeline[0].at.block: expected a block height from 1",
        ),
        (
            "- {at: {block: 10, after: x}, fault: process.kill, target: rpc, for: 1s}",
            "timeline[0].at: expected a time (30s), {block: 1200}",
        ),
        (
            "- {at: {block: 10, delay: 1s}, fault: process.kill, target: rpc, for: 1s}",
            "timeline[0].at.delay: unknown key 'delay' in an `at: {block: ...}` trigger; allowed: block",
        ),
        (
            "- {at: {after: x, phase: started}, fault: process.kill, target: rpc, for: 1s}",
            "timeline[0].at.phase: expected one of injected, healed, got 'started'",
        ),
        (
            "- {at: {event: funding_tik}, fault: process.kill, target: rpc, for: 1s}",
            "timeline[0].at.event: unknown event 'funding_tik'; the stack reports: deposit_credited",
        ),
        (
            "- {at: [1], fault: process.kill, target: rpc, for: 1s}",
            "timeline[0].at: expected a time (30s)",
        ),
    ],
)
def test_triggers_that_can_never_fire_are_rejected(entries: str, expected: str) -> None:
    assert expected in error_of(entries)


def test_a_block_trigger_needs_a_stack_that_probes_heights() -> None:
    from pathlib import Path

    stack = Path(__file__).parents[1] / "scenario" / "data" / "teststack"
    text = f"""\
name: trig
stack: {{ref: {stack}}}
duration: 60s
timeline:
  - {{at: {{block: +5}}, fault: process.kill, target: api, for: 1s}}
"""
    with pytest.raises(ScenarioError) as info:
        load_scenario_text(text, "s.yaml")
    assert "s.yaml:5: timeline[0].at.block: the stack does not probe its block height" in str(
        info.value
    )
