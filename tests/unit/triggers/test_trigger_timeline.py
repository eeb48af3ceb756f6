"""The timeline fires entries on block heights, other entries and events, records
when and at which block, and keeps entries on one resource apart."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from l2chaos.faults.base import Fault, FaultContext, NoParams, Target, TargetKind, Window
from l2chaos.rundir import RunDir
from l2chaos.scenario import FaultUse
from l2chaos.signals import ChainHeights, EventFeed, Signals
from l2chaos.timeline import Timeline
from l2chaos.triggers import AfterFault, AtBlock, OnEvent, Trigger

NONE: Any = None
MS = 1_000_000


class Marker(Fault[NoParams]):
    """Records the monotonic time of its inject and heal; may claim a resource."""

    name = "test.marker"
    summary = "records calls"
    window = Window.OPTIONAL

    def __init__(self, resource: str | None = None) -> None:
        super().__init__(Target(TargetKind.NONE), NoParams(), None)
        self.resource = resource
        self.times: dict[str, int] = {}

    def resources(self) -> set[str]:
        return {self.resource} if self.resource else set()

    def inject(self, ctx: FaultContext) -> dict[str, Any]:
        self.times["inject"] = time.monotonic_ns()
        return {}

    def heal(self, ctx: FaultContext) -> dict[str, Any]:
        self.times["heal"] = time.monotonic_ns()
        return {}


class Chain:
    """A chain that makes one block each time it is asked its height: the trigger's
    own polls near the target are what moves it, so when it fires is up to the
    timeline's logic, not to how threads happen to be scheduled."""

    def __init__(self, start: int) -> None:
        self.last = start

    def height(self) -> int:
        self.last += 1
        return self.last


def use(
    i: int, fault: Fault[Any], trigger: Trigger | None, at_ms: int = 0, for_ms: int = 100
) -> FaultUse:
    return FaultUse(i, f"f{i}", fault, at_ms * MS, for_ms * MS, trigger=trigger)


def play(
    tmp_path: Path, uses: list[FaultUse], signals: Signals, t0: int, wait_s: float = 20
) -> tuple[list[dict[str, Any]], Timeline]:
    rd = RunDir.create(tmp_path, "t")
    tl = Timeline(
        uses,
        lambda u, note: FaultContext(NONE, NONE, NONE, NONE, NONE, note=note),
        rd.jsonl("faults.jsonl"),
        t0,
        signals,
    )
    tl.start()
    tl.wait_done(wait_s)
    tl.heal_all()
    rd.close()
    lines = (rd.path / "faults.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines], tl


def test_a_block_trigger_fires_on_the_first_height_at_its_target(tmp_path: Path) -> None:
    chain = Chain(125)
    heights = ChainHeights(chain.height)
    now = time.monotonic_ns()
    # two probe samples 250 ms apart (100 blocks/s): block 130 is near, so the
    # trigger polls the chain itself instead of waiting for the next sample
    heights.observe(100, now - 500 * MS)
    heights.observe(125, now - 250 * MS)
    marker = Marker()
    records, tl = play(
        tmp_path, [use(0, marker, AtBlock(30, relative=True))], Signals(heights, None, 100), now
    )
    (inject,) = [r for r in records if r["action"] == "inject"]
    assert inject["trigger"] == {"kind": "block", "block": 30, "relative": True}
    assert inject["target_block"] == 130
    assert (inject["block"], inject["lateness_blocks"]) == (130, 0)
    assert chain.last == 130  # polled block by block, and not past the target
    assert tl.errors() == []


def test_after_and_event_triggers_fire_on_their_phase_and_event(tmp_path: Path) -> None:
    a, b, c, d = Marker(), Marker(), Marker(), Marker()
    t0_ns, t0 = time.time_ns(), time.monotonic_ns()
    feed = EventFeed(t0_ns, ["funding_tick"])
    feed.publish("funding_tick", t0_ns - 50 * MS, block=7)  # before time zero: history
    uses = [
        use(0, a, None, at_ms=50, for_ms=150),
        use(1, b, AfterFault("f0", "healed", 100 * MS)),
        use(2, c, AfterFault("f0", "injected", 0)),
        use(3, d, OnEvent("funding_tick", delay_ns=50 * MS, not_before_ns=100 * MS)),
    ]

    def publisher() -> None:  # an event too early for the trigger, then one in time
        feed.publish("funding_tick", t0_ns + 20 * MS, block=8)
        feed.publish("funding_tick", t0_ns + 120 * MS, block=9, details={"seq": 41})

    threading.Thread(target=publisher, daemon=True).start()
    records, tl = play(tmp_path, uses, Signals(None, feed, None), t0)
    assert b.times["inject"] - a.times["heal"] >= 100 * MS
    assert c.times["inject"] >= a.times["inject"]
    assert d.times["inject"] - t0 >= 170 * MS
    injects = {r["label"]: r for r in records if r["action"] == "inject"}
    assert injects["f1"]["fired_by"] == {"fault": "f0", "phase": "healed"}
    assert injects["f3"]["scheduled_ns"] == 170 * MS
    assert injects["f3"]["target_block"] == 9
    assert injects["f3"]["fired_by"]["seq"] == 41
    assert injects["f3"]["trigger_text"] == "event funding_tick from 100ms +50ms"
    assert tl.errors() == []


def test_a_trigger_that_never_fires_is_recorded_as_missed(tmp_path: Path) -> None:
    heights = ChainHeights()
    heights.observe(5)
    marker, chained = Marker(), Marker()
    uses = [
        use(0, marker, AtBlock(1000, relative=False)),
        use(1, chained, AfterFault("f0", "healed", 0)),
    ]
    records, tl = play(tmp_path, uses, Signals(heights, None, 5), time.monotonic_ns(), wait_s=0.3)
    assert marker.times == {}
    assert chained.times == {}
    missed = {r["label"]: r for r in records if r["action"] == "missed"}
    assert missed["f0"]["error"] == "block 1000 not reached by the end of the run (last block 5)"
    assert missed["f0"]["trigger_text"] == "block 1000"
    assert missed["f1"]["error"] == "f0 was not healed before the end of the run"
    assert tl.errors() == []
    assert tl.missed() == [
        "f0: never fired (block 1000): block 1000 not reached by the end of the run (last block 5)",
        "f1: never fired (after f0 healed): f0 was not healed before the end of the run",
    ]


def test_a_trigger_that_fires_while_its_resource_is_held_waits_for_the_heal(
    tmp_path: Path,
) -> None:
    first, second = Marker("service:rpc"), Marker("service:rpc")
    t0_ns, t0 = time.time_ns(), time.monotonic_ns()
    feed = EventFeed(t0_ns, ["tick"])
    feed.publish("tick", t0_ns + 50 * MS)
    uses = [use(0, first, None, at_ms=0, for_ms=300), use(1, second, OnEvent("tick"))]
    records, _ = play(tmp_path, uses, Signals(None, feed, None), t0)
    assert second.times["inject"] >= first.times["heal"]
    (late,) = [r for r in records if r["action"] == "inject" and r["label"] == "f1"]
    assert late["waited_for"] == ["f0"]
    assert late["lateness_ms"] >= 200


def test_heal_all_while_an_inject_waits_for_its_resource_leaves_nothing_injected(
    tmp_path: Path,
) -> None:
    holder, waiter = Marker("link:a->b"), Marker("link:a->b")
    rd = RunDir.create(tmp_path, "t")
    t0 = time.monotonic_ns()
    tl = Timeline(
        [use(0, holder, None, for_ms=60_000), use(1, waiter, None, at_ms=10)],
        lambda u, note: FaultContext(NONE, NONE, NONE, NONE, NONE, note=note),
        rd.jsonl("faults.jsonl"),
        t0,
    )
    tl.start()
    deadline = time.monotonic() + 10
    while "inject" not in holder.times and time.monotonic() < deadline:
        time.sleep(0.01)
    tl.heal_all()
    rd.close()
    assert "heal" in holder.times
    assert waiter.times == {}  # stopped before its resource was free: never injected
    assert tl.active() == []
