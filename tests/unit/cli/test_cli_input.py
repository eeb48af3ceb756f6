"""Bad input through the real command: exit code 2, one clear line, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._support.cli import l2chaos
from tests._support.teststack import GOOD_SCENARIO

SCENARIO = GOOD_SCENARIO + "invariants: [no_zero_price_liquidations]\n"


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(SCENARIO)
    return p


def test_validate_ok(scenario: Path) -> None:
    done = l2chaos("validate", str(scenario))
    assert done.returncode == 0, done.stderr
    assert f"{scenario}: ok (good: 2 faults, 1 invariants)" in done.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["validate", "{s}", "--set", "duration=soon"],
            "{s}:4: duration: expected a duration such as",
        ),
        (
            ["validate", "{s}", "--set", "timeline[0].target=api->worker"],
            "timeline[0].target: unknown link 'api->worker'",
        ),
        (
            ["validate", "{s}", "--profile", "strongest"],
            "stack.profile: unknown profile 'strongest' (--profile)",
        ),
        (["validate", "{dir}/missing.yaml"], "{dir}/missing.yaml: file not found"),
        (
            ["run", "{s}", "--time-scale", "0"],
            "argument --time-scale: expected a number from 0.01 to 100",
        ),
        (["run", "{s}", "--workers", "-1"], "argument --workers: expected a number >= 0"),
        (["run", "{s}", "--backend", "k8s"], "argument --backend: invalid choice: 'k8s'"),
        (["list", "bananas"], "argument what: invalid choice: 'bananas'"),
        (["check", "{dir}"], "RUN_DIR: {dir} is not a run directory (no scenario.resolved.json)"),
        (
            ["validate", "{s}", "--set", "invariants[0]=no_such_invariant"],
            "invariants[0]: unknown invariant 'no_such_invariant'",
        ),
    ],
)
def test_bad_input_exits_2_with_one_message(scenario: Path, args: list[str], expected: str) -> None:
    fill = {"s": str(scenario), "dir": str(scenario.parent)}
    done = l2chaos(*(a.format(**fill) for a in args))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert expected.format(**fill) in done.stderr
    assert "Traceback" not in done.stderr
    problem_lines = [ln for ln in done.stderr.splitlines() if ln.startswith("l2chaos")]
    assert len(problem_lines) == 1


def test_list_prints_every_catalogue() -> None:
    for what, expect in [
        ("faults", "network.latency"),
        ("invariants", "fund_conservation"),
        ("stacks", "perpdex"),
        ("protocols", "persona taker:"),
        ("platforms", "docker  [auto rank 10; controls: disconnect, kill, pause, stop]"),
    ]:
        done = l2chaos("list", what)
        assert done.returncode == 0, done.stderr
        assert expect in done.stdout
    md = l2chaos("list", "faults", "--markdown")
    assert md.stdout.startswith("# Faults\n")
    assert "### `process.restart_race`" in md.stdout
