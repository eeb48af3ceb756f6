"""A failed run as shrink material: the nemesis's draws become timeline entries, a
candidate is written back as a scenario that validates and replays without the nemesis,
and a run that cannot be shrunk says why (exit 2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from l2chaos.errors import UsageError
from l2chaos.scenario import load_scenario
from l2chaos.shrink.replay import explicit_timeline, read_failed_run, scenario_yaml

SOURCE = Path(__file__).parents[2] / "integration" / "shrink" / "nemesis-race.yaml"
S = 1_000_000_000
T0 = 1_700_000_000 * S


def note(step: str, fault: str, t_s: float, **extra: Any) -> dict[str, Any]:
    details = {"step": step, "fault": fault, "target": extra.pop("target", "-"), **extra}
    return {"fault_id": 0, "action": "note", "t_ns": T0 + round(t_s * S), "details": details}


def make_run(tmp_path: Path, *, violations: int = 3) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(SOURCE, run / "scenario.source.yaml")
    resolved = {
        "name": "shrink-nemesis-race",
        "seed": 4,
        "profile": "vulnerable",
        "time_scale": 0.5,
        "duration_ns": 45 * S // 2,
        "overrides": ["load.users=12"],
        "stack": {"ref": "perpdex", "name": "perpdex", "path": "/x/stack.yaml", "switches": {}},
        "timeline": [{"index": 0, "label": "nemesis", "fault": "nemesis.random"}],
    }
    (run / "scenario.resolved.json").write_text(json.dumps(resolved))
    info = {"run_id": "r1", "t0_ns": T0, "backend": "local", "profile": "vulnerable"}
    (run / "run.json").write_text(json.dumps(info))
    result = {
        "invariants": [
            {"name": "no_zero_price_liquidations", "status": "fail", "violation_count": violations}
        ]
    }
    (run / "result.json").write_text(json.dumps(result))
    records = [
        {"fault_id": 0, "action": "inject", "t_ns": T0 + 6 * S},
        note(
            "inject",
            "network.latency",
            7.3,
            target="ui-api->rpc",
            entry=0,
            started_t_ns=T0 + 7_300_000_000,
            hold_ns=S,
        ),
        note("heal", "network.latency", 8.3),
        note(
            "inject",
            "process.restart_race",
            12.0,
            target="db",
            entry=2,
            started_t_ns=T0 + 12 * S,
            hold_ns=2 * S,
        ),
        note("stopped", "db", 12.1),
        note("heal", "process.restart_race", 14.2),
        note("inject", "network.latency", 16.0, target="bridge->rpc", error="toxiproxy down"),
        note("inject", "network.latency", 17.0, target="bridge->rpc"),  # an older nemesis: no entry
        note("heal", "network.latency", 18.0),
    ]
    (run / "faults.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run


def test_draws_become_entries_at_their_unscaled_times(tmp_path: Path) -> None:
    failed = read_failed_run(make_run(tmp_path))
    assert failed.targets == ("no_zero_price_liquidations",)
    assert failed.doc["load"]["users"] == 12  # the run's --set applied
    cand = explicit_timeline(failed)
    assert cand.duration_ns == 45 * S
    got = [(e.label, e.fault, e.at_ns, e.for_ns, e.target, dict(e.params)) for e in cand.entries]
    assert got == [
        ("draw1-network.latency", "network.latency", 14_600_000_000, 2 * S, "ui-api->rpc", {"latency": "50ms"}),
        ("draw2-process.restart_race", "process.restart_race", 24 * S, None, "db", {"downtime": "4s", "how": "fast"}),
        ("draw3-network.latency", "network.latency", 34 * S, 2 * S, "bridge->rpc", {"latency": "20ms"}),
    ]  # fmt: skip


def test_a_candidate_is_a_scenario_that_validates_without_the_nemesis(tmp_path: Path) -> None:
    failed = read_failed_run(make_run(tmp_path))
    cand = explicit_timeline(failed)
    text = scenario_yaml(failed, cand, name="shrink-nemesis-race-shrunk", description="d")
    assert text.startswith("# l2chaos: scenario\n")
    doc = yaml.safe_load(text)
    assert doc["expect"] == {"vulnerable": {"all_hold": True}}
    assert doc["time_scale"] == 0.5
    assert doc["backend"] == "local"
    assert doc["invariants"] == ["no_zero_price_liquidations"]
    path = tmp_path / "c.yaml"
    path.write_text(text)
    scenario = load_scenario(path)
    assert [u.name for u in scenario.timeline] == [
        "network.latency",
        "process.restart_race",
        "network.latency",
    ]
    assert scenario.timeline[1].at_ns == 12 * S  # 24s at time scale 0.5: where it fired
    assert scenario.seed == 4
    assert scenario.profile == "vulnerable"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("no-result", "has no result.json: the run was not checked"),
        ("vacuous", "nothing to shrink: no invariant failed with a violation"),
        (
            "no-source",
            "has no scenario.source.yaml (the scenario as it ran); give it with --scenario",
        ),
        ("bad-invariant", "--invariant: invariant 'fund_conservation' did not fail in this run"),
    ],
)
def test_a_run_that_cannot_be_shrunk_says_why(tmp_path: Path, change: str, expected: str) -> None:
    run = make_run(tmp_path, violations=0 if change == "vacuous" else 2)
    if change == "no-result":
        (run / "result.json").unlink()
    if change == "no-source":
        (run / "scenario.source.yaml").unlink()
    invariants = ["fund_conservation"] if change == "bad-invariant" else []
    with pytest.raises(UsageError) as info:
        read_failed_run(run, invariants=invariants)
    assert expected in str(info.value)
