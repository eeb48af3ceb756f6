"""Lifecycle events: listeners get keyword arguments, one that raises is recorded and
the others still run, a thread that dies of an exception is a problem, and a run whose
listener raised (or whose thread died) exits 3 with it in run.json."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from l2chaos import runner
from l2chaos.events import Events, Problems, report_thread_deaths
from l2chaos.scenario import load_scenario_text


def test_listeners_run_in_order_and_one_that_raises_is_recorded() -> None:
    events = Events()
    seen: list[str] = []

    @events.run_finished.add_listener
    def first(*, run_dir: Path, exit_code: int, error: str | None, **_: object) -> None:
        seen.append(f"first {exit_code}")
        raise RuntimeError("listener bug")

    @events.run_finished.add_listener
    def second(*, exit_code: int, **_: object) -> None:
        seen.append(f"second {exit_code}")

    events.run_finished.fire(run_dir=Path("r"), exit_code=0, error=None)
    assert seen == ["first 0", "second 0"]  # the raise stopped nothing
    (problem,) = events.problems.items()
    assert "first" in problem
    assert "of run_finished raised RuntimeError: listener bug" in problem
    events.run_finished.remove_listener(first)
    events.run_finished.fire(run_dir=Path("r"), exit_code=1, error=None)
    assert seen[-1] == "second 1"
    assert len(events.problems.items()) == 1


# the exception is still handed on to the hook before ours (pytest's warns about it)
THREAD_DEATH = pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")


@THREAD_DEATH
def test_a_thread_that_dies_is_a_problem() -> None:
    problems = Problems()

    def dies() -> None:
        raise ValueError("probe parser broke")

    with report_thread_deaths(problems):
        t = threading.Thread(target=dies, name="probe-loop")
        t.start()
        t.join()
    (problem,) = problems.items()
    assert problem.startswith("thread probe-loop died of ValueError: probe parser broke at ")
    assert threading.excepthook is not None
    t = threading.Thread(target=lambda: None)  # the hook is gone after the block
    t.start()
    t.join()
    assert len(problems.items()) == 1


def _quiet_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **opts: Any) -> runner.RunResult:
    """A run whose middle (stack, probes, faults) is replaced by `opts['middle']`: what
    is left is the runner's plumbing, from run_started to run_finished."""
    middle = opts.pop("middle", lambda: None)
    monkeypatch.setattr(runner._Run, "_up_and_run", lambda self, parts: middle())
    sc = load_scenario_text("name: quiet\nstack: perpdex\nduration: 30s\n", "quiet.yaml")
    return runner.run_loaded(
        sc, runner.RunOptions(out_dir=tmp_path, progress=False, backend="local", **opts)
    )


def test_a_run_whose_listener_raised_exits_3_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    def register(events: Events) -> None:
        events.run_started.add_listener(lambda **kw: seen.append(f"started {kw['backend']}"))
        events.verdict.add_listener(lambda **kw: seen.append("verdict"))
        events.run_finished.add_listener(lambda **kw: seen.append(f"finished {kw['exit_code']}"))

        @events.verdict.add_listener
        def broken(**_: object) -> None:
            raise KeyError("oops")

    result = _quiet_run(tmp_path, monkeypatch, listeners=[register])
    assert seen[0] == "started local"
    assert "verdict" in seen
    assert seen[-1].startswith("finished ")
    assert result.exit_code == 3
    assert result.run_dir is not None
    run = json.loads((result.run_dir / "run.json").read_text())
    assert run["exit_code"] == 3
    assert any("of verdict raised KeyError" in p for p in run["problems"]), run["problems"]
    assert (result.run_dir / "result.json").exists()  # the reports still listened


@THREAD_DEATH
def test_a_run_whose_thread_died_exits_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def middle() -> None:
        def nemesis() -> None:
            raise RuntimeError("drew from an empty list")

        t = threading.Thread(target=nemesis, name="nemesis")
        t.start()
        t.join()

    result = _quiet_run(tmp_path, monkeypatch, middle=middle)
    assert result.exit_code == 3
    assert result.run_dir is not None
    run = json.loads((result.run_dir / "run.json").read_text())
    assert any(p.startswith("thread nemesis died of RuntimeError") for p in run["problems"])
