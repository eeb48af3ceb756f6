"""Open-loop load against the real perpdex stack: a global rate of 100 steps/s split
between two Locust workers is achieved within 5% over 20 s (a rate the stack carries
with room to spare), and the run's record has the rate offered and achieved."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from l2chaos.load import check_history

from tests._support.stacks import wait_until

pytestmark = pytest.mark.integration

RATE = 100.0
WINDOW_S = 20


def seconds(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def readers_at(rate: float, users: int) -> dict[str, Any]:
    """Two workers of readers held at `rate` steps/s."""
    return {"users": users, "spawn_rate": 50, "workers": 2, "personas": {"reader": 1},
            "rate": {"shape": "constant", "ops": rate}}  # fmt: skip


def test_two_workers_hold_a_global_rate(perp: Any) -> None:
    runner = perp.runner(readers_at(RATE, 16), duration_s=WINDOW_S + 8)
    with runner:
        assert runner.wait(timeout=120) == 0  # Locust stops by itself at the duration
    result = runner.result
    assert result is not None
    assert result.clean, result.to_json()
    run_dir = runner.run_dir
    for w in (0, 1):  # both workers paced their share
        assert seconds(run_dir / "history" / f"rate-{w}.jsonl")

    rate = seconds(run_dir / "load" / "rate.jsonl")
    assert [r["t_s"] for r in rate] == list(range(rate[0]["t_s"], rate[-1]["t_s"] + 1))
    # 20 s once users are up: from the second after the first arrival a user took
    first = next(i for i, r in enumerate(rate) if r["achieved"] > 0)
    window = rate[first + 1 : first + 1 + WINDOW_S]
    assert len(window) == WINDOW_S, rate
    target = sum(r["target"] for r in window)
    assert target == pytest.approx(RATE * WINDOW_S, rel=0.01)  # the two shares add up
    achieved = sum(r["achieved"] for r in window)
    assert abs(achieved - target) <= 0.05 * target, (achieved, target, window)
    assert sum(r["dropped"] for r in window) <= 0.05 * target
    assert result.rate is not None
    assert result.rate.achieved == sum(r["achieved"] for r in rate)
    summary = json.loads((run_dir / "load" / "summary.json").read_text())
    assert summary["rate"]["achieved"] == result.rate.achieved

    # each step is at least one recorded operation: the history saw the rate too
    chk = check_history(run_dir / "history.jsonl")
    assert chk.ok, chk.problems
    t0 = runner.t0_ns
    lo, hi = t0 + window[0]["t_s"] * 10**9, t0 + (window[-1]["t_s"] + 1) * 10**9
    invokes = [
        r
        for r in map(json.loads, (run_dir / "history.jsonl").read_text().splitlines())
        if r["type"] == "invoke" and lo <= r["t_ns"] < hi
    ]
    assert len(invokes) >= 0.95 * target
    assert {r["worker"] for r in invokes} == {0, 1}


def flushed(path: Path) -> list[dict[str, Any]]:
    """The seconds a worker has written so far (a line being written is not counted)."""
    if not path.exists():
        return []
    text = path.read_text()
    return [json.loads(x) for x in text[: text.rfind("\n") + 1].splitlines()]


def test_a_worker_that_leaves_hands_its_share_to_the_other(perp: Any) -> None:
    rate = 40.0
    runner = perp.runner(readers_at(rate, 8), duration_s=120)
    mine = runner.run_dir / "history" / "rate-0.jsonl"
    with runner:
        # worker 0 paces half the rate while worker 1 runs ...
        half = rate / 2
        assert wait_until(
            lambda: any(r["target"] == pytest.approx(half, rel=0.05) for r in flushed(mine)), 90
        ), "worker 0 never paced half the rate"
        os.killpg(runner.pids["worker-1"], signal.SIGKILL)
        seen = len(flushed(mine))
        # ... and the whole of it once the master has noticed worker 1 is gone
        assert wait_until(
            lambda: any(
                r["target"] == pytest.approx(rate, rel=0.05) and r["achieved"] >= 0.95 * rate
                for r in flushed(mine)[seen:]
            ),
            90,
        ), "worker 0 never took the whole rate"
        runner.stop()
    assert not runner.alive()
