"""An incomplete run gets no verdict: `l2chaos check` on a record whose run.json never
reached the end of the wind-down (killed, crashed) is exit 3 with the reason, and an
interrupted run is 130 in the check as in the run. A bug inside a run is recorded as an
abort (never left as `running`)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from l2chaos.invariants.synth import RecordWriter
from l2chaos.rundir.json_types import JsonObject

from tests._support.cli import l2chaos as run_l2chaos

LIQ: list[JsonObject] = [{"name": "no_zero_price_liquidations", "params": {}}]


def record(tmp_path: Path, **run: Any) -> Path:
    """A record every checker would pass, with run.json as given."""
    path = tmp_path / "run"
    with RecordWriter(path) as rw:
        rw.scenario(invariants=LIQ)
        rw.header()
        for i in range(20):
            rw.block(i, host_s=float(i))
        price = {"price": 90_000, "oracle_price": 90_000, "mark_price": 90_000}
        data = {"account": 42, "market": "BTC-USD-PERP", "guard": None, **price}
        rw.event("liquidation", block=12, block_seq=12, host_s=12.0, data=data)
        rw.run(end_s=20.0, **run)
    return path


def check(run_dir: Path) -> subprocess.CompletedProcess[str]:
    return run_l2chaos("check", str(run_dir))


def test_a_complete_record_gets_its_verdict(tmp_path: Path) -> None:
    done = check(record(tmp_path, phase="finished"))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("phase", ["running", "winding down", "stack up", None])
def test_a_run_killed_before_its_wind_down_finished_gets_no_verdict(
    tmp_path: Path, phase: str | None
) -> None:
    run_dir = record(tmp_path, phase=phase)
    done = check(run_dir)
    assert done.returncode == 3, done.stdout + done.stderr
    assert f"the run is incomplete (run.json says phase {phase!r}" in done.stdout
    result = json.loads((run_dir / "result.json").read_text())
    assert result["exit_code"] == 3
    assert [i["status"] for i in result["invariants"]] == ["not_applicable"]
    assert result["invariants"][0]["reason"].startswith("no verdict: the run is incomplete")


def test_an_interrupted_run_is_130_in_the_check_too(tmp_path: Path) -> None:
    error = "interrupted by SIGINT; tearing down"
    run_dir = record(tmp_path, phase="aborted", error=error, exit_code=130)
    done = check(run_dir)
    assert done.returncode == 130, done.stdout + done.stderr
    assert json.loads((run_dir / "result.json").read_text())["exit_code"] == 130
    assert error in done.stdout


def test_a_bug_during_a_run_is_recorded_as_an_abort(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from l2chaos import runner
    from l2chaos.scenario import load_scenario_text

    sc = load_scenario_text("name: buggy\nstack: perpdex\nduration: 30s\n", "buggy.yaml")

    def bug(self: Any, parts: Any) -> None:
        raise KeyError("name")  # what a bug looks like from outside

    monkeypatch.setattr(runner._Run, "_up_and_run", bug)
    result = runner.run_loaded(
        sc, runner.RunOptions(out_dir=tmp_path, progress=False, backend="local")
    )
    assert result.exit_code == 3
    assert result.error == "internal error: KeyError: 'name'"
    assert result.run_dir is not None
    run = json.loads((result.run_dir / "run.json").read_text())
    assert run["phase"] == "aborted"
    assert run["exit_code"] == 3
    assert "KeyError" in (result.run_dir / "harness-traceback.txt").read_text()
    assert json.loads((result.run_dir / "result.json").read_text())["exit_code"] == 3
    assert check(result.run_dir).returncode == 3
