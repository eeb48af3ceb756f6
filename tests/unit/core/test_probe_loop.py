"""An unexpected answer does not end the probe loop silently: it keeps sampling and
the run gets a problem (exit 3) naming how many samples failed and the first error."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from l2chaos.probe import ProbeLoop
from l2chaos.rundir import RunDir


class Answers:
    """Samples like a Prober whose stack answers something it cannot read, then recovers."""

    spec = SimpleNamespace(probes={})  # no order probe: no thread of its own

    def __init__(self, bad: int) -> None:
        self.bad = bad
        self.calls = 0

    def sample(self) -> Any:
        self.calls += 1
        if self.calls <= self.bad:
            raise AttributeError("'list' object has no attribute 'get'")
        from l2chaos.probe import Sample

        return Sample(time.time_ns(), time.monotonic_ns(), {}, {}, 7, None, None, None)


def test_failed_samples_are_counted_and_the_loop_goes_on(tmp_path: Path) -> None:
    rd = RunDir.create(tmp_path, "t")
    prober = Answers(bad=3)
    loop = ProbeLoop(prober, rd.jsonl("probes.jsonl"), interval_s=0.01)  # type: ignore[arg-type]
    loop.start()
    deadline = time.monotonic() + 30
    while loop.last is None:  # the samples after the bad ones still arrive
        assert time.monotonic() < deadline, "the loop stopped after the failures"
        time.sleep(0.01)
    loop.stop()
    rd.close()
    assert loop.problem() == (
        "3 probe sample(s) failed, the first with AttributeError: 'list' object has no attribute 'get'"
    )
    assert (rd.path / "probes.jsonl").read_text().count('"block_height":7') >= 1


def test_a_clean_loop_has_no_problem(tmp_path: Path) -> None:
    rd = RunDir.create(tmp_path, "t")
    loop = ProbeLoop(Answers(bad=0), rd.jsonl("probes.jsonl"), interval_s=0.01)  # type: ignore[arg-type]
    loop.start()
    deadline = time.monotonic() + 30
    while loop.last is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    loop.stop()
    rd.close()
    assert loop.problem() is None
