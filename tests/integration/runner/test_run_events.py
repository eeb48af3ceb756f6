"""A real run fires its lifecycle events in order, to a listener given through
RunOptions (as an l2chaos.listeners plug-in would be), and a listener that raises
makes the run exit 3 with the error in run.json, the verdict intact beside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from l2chaos.events import Events
from l2chaos.rundir.run_info import RECORD_VERSION
from l2chaos.runner import RunOptions, run_scenario

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FLAGSHIP = (
    Path(__file__).resolve().parents[3] / "scenarios" / "paradex-2026-01-19-db-restart-race.yaml"
)


def test_events_in_order_and_a_raising_listener_is_exit_3(tmp_path: Path) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    raised: list[str] = []

    def register(events: Events) -> None:
        for name, hook in vars(events).items():
            if name != "problems":
                hook.add_listener(lambda _n=name, **kw: seen.append((_n, kw)))

        @events.probe_sample.add_listener
        def flaky(**_: object) -> None:
            if not raised:
                raised.append("once")
                raise RuntimeError("the dashboard is down")

    result = run_scenario(
        FLAGSHIP,
        RunOptions(
            out_dir=tmp_path,
            progress=False,
            profile="hardened",
            sets=["duration=20s", "timeline[0].at=8s", "load.users=4", "sometimes=[]"],
            listeners=[register],
        ),
    )
    names = [n for n, _ in seen if n != "probe_sample"]
    assert names == [
        "run_started",
        "stack_ready",
        "baseline_passed",
        "load_started",
        "fault_injected",
        "fault_healed",
        "load_stopped",
        "verdict",
        "run_finished",
    ], names
    kw = dict(seen)
    assert kw["fault_injected"]["action"].name == "process.restart_race"
    assert kw["fault_injected"]["action"].ok
    assert kw["fault_healed"]["action"].label == kw["fault_injected"]["action"].label
    assert kw["load_stopped"]["result"].killed == []
    outcome = kw["verdict"]["outcome"]
    assert {v.status for v in outcome.verdicts} == {"pass"}  # the stack held
    assert outcome.exit_code == 3  # the check saw run.json's problems too
    assert sum(n == "probe_sample" for n, _ in seen) >= 20
    assert result.exit_code == 3  # ... but a listener broke
    assert result.run_dir is not None
    run = json.loads((result.run_dir / "run.json").read_text())
    assert run["record_version"] == RECORD_VERSION
    assert run["exit_code"] == 3
    assert [p for p in run["problems"] if "probe_sample raised RuntimeError" in p]
    assert "the dashboard is down" in result.summary
