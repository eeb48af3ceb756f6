"""The plugin example of docs/own-stack.md (docs/own-stack/example): installed next to
l2chaos, its entry points add a fault, an invariant and a stack, and its scenario
validates; its checker judges block progress from the harness's own records.

"Installed" without touching the shared venv: the package is copied into a folder on
PYTHONPATH with the dist-info pip would write (entry_points.txt from its pyproject), so
importlib.metadata finds it exactly as after `pip install`."""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from l2chaos.invariants.check import run_checker
from l2chaos.invariants.record import RunRecord
from l2chaos.params import Where, bind

from tests._support.cli import l2chaos as run_l2chaos
from tests._support.modules import load_module
from tests._support.plugins import plugin_env, write_dist_info

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "docs" / "own-stack" / "example"
S = 1_000_000_000


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site folder holding the example as pip would install it."""
    out = tmp_path_factory.mktemp("site")
    shutil.copytree(EXAMPLE / "l2chaos_example", out / "l2chaos_example")
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    write_dist_info(out, project["name"], project["version"], project["entry-points"])
    return out


def l2chaos(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_l2chaos(*args, env=plugin_env(site), cwd=ROOT)


def test_entry_points_add_a_fault_an_invariant_and_a_stack(site: Path) -> None:
    faults = l2chaos(site, "list", "faults")
    assert faults.returncode == 0, faults.stderr
    assert "example.link_flap  [target: a link `client->server`; window: required]" in (
        faults.stdout
    )
    invariants = l2chaos(site, "list", "invariants")
    assert "example.block_progress\n" in invariants.stdout
    stacks = l2chaos(site, "list", "stacks")
    assert f"mydex  ({site / 'l2chaos_example' / 'stack.yaml'})" in stacks.stdout
    scenario = "docs/own-stack/example/scenarios/mydex-flaky-rpc.yaml"
    ok = l2chaos(site, "validate", scenario)
    assert ok.returncode == 0, ok.stderr
    assert "ok (mydex-flaky-rpc: 1 faults, 3 invariants)" in ok.stdout
    # the same scenario asking for checkers the stack cannot feed still validates
    # (they are not_applicable at check time, see docs/own-stack.md)
    na = l2chaos(site, "validate", scenario, "--set", "invariants=[fund_conservation]")
    assert na.returncode == 0, na.stderr
    # the example's own parameter checks are input errors like the built-ins'
    bad = l2chaos(site, "validate", scenario, "--set", "timeline[0].with.down=0ms")
    assert bad.returncode == 2
    assert "timeline[0].with.down" in bad.stderr


def test_without_the_plugin_the_names_are_unknown(site: Path) -> None:
    done = run_l2chaos(
        "validate",
        "docs/own-stack/example/scenarios/mydex-flaky-rpc.yaml",
        cwd=ROOT,
        env={**plugin_env(site), "L2CHAOS_NO_PLUGINS": "1"},
    )
    assert done.returncode == 2
    assert "unknown stack 'mydex'" in done.stderr


@pytest.fixture(scope="module")
def invariants_module() -> ModuleType:
    return load_module(
        "l2chaos_example_invariants_test", EXAMPLE / "l2chaos_example" / "invariants.py"
    )


def _record(tmp: Path, heights: Sequence[int | None], fault: tuple[float, float] | None) -> Path:
    """A run directory: probes every 250 ms with these heights, one fault window."""
    t0 = 1_800_000_000 * S
    (tmp / "run.json").write_text(
        json.dumps({"run_id": "t", "t0_ns": t0, "ended_t_ns": t0 + len(heights) * S // 4})
    )
    with open(tmp / "probes.jsonl", "w") as fh:
        for i, h in enumerate(heights):
            fh.write(json.dumps({"t_ns": t0 + i * S // 4, "block_height": h}) + "\n")
    with open(tmp / "faults.jsonl", "w") as fh:
        if fault is not None:
            start, end = (t0 + int(x * S) for x in fault)
            for action, t in (("inject", start), ("heal", end)):
                rec = {"fault_id": 0, "label": "f", "name": "network.down", "target": "a->b",
                       "action": action, "t_ns": t, "took_ms": 0.0, "ok": True}  # fmt: skip
                fh.write(json.dumps(rec) + "\n")
    return tmp


def _check(module: ModuleType, run_dir: Path, **params: Any) -> Any:
    given = {"max_gap": "2s", "settle": "1s", **params}  # as a scenario writes them
    checker = module.BlockProgress(bind(module.ProgressParams, given, Where(None, "params")))
    return run_checker(checker, RunRecord(run_dir))


def test_block_progress_finds_a_standstill_outside_fault_windows(
    invariants_module: ModuleType, tmp_path: Path
) -> None:
    # 5 s of progress, 4 s standing still at 20, 3 s of progress again
    heights = list(range(20)) + [20] * 16 + list(range(21, 33))
    v = _check(invariants_module, _record(tmp_path, heights, None))
    assert v.status == "fail"
    assert v.violation_count == 1
    ev = v.violations[0].evidence
    assert ev["block"] == 20
    assert ev["seen"] > 2.0


def test_block_progress_excuses_a_fault_window_and_its_settle_time(
    invariants_module: ModuleType, tmp_path: Path
) -> None:
    heights = list(range(20)) + [20] * 16 + list(range(21, 33))
    # the fault covers the standstill (5 s to 8 s, + 1 s settle)
    v = _check(invariants_module, _record(tmp_path, heights, (5.0, 8.0)))
    assert v.status == "pass"
    assert v.checked["samples"] == len(heights) - 17  # samples at 5.00 s to 9.00 s excused


def test_block_progress_without_heights_is_not_applicable(
    invariants_module: ModuleType, tmp_path: Path
) -> None:
    v = _check(invariants_module, _record(tmp_path, [None] * 20, None))
    assert v.status == "not_applicable"
    assert "block_height probe" in v.reason
    # and without the probe log at all, check_run's needs make it not_applicable too
    (tmp_path / "probes.jsonl").unlink()
    assert _check(invariants_module, tmp_path).status == "not_applicable"
