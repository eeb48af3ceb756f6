"""The timeline schedules injects and heals on time, in parallel, and heals what is left."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from l2chaos.faults.base import Fault, FaultContext, NoParams, Target, TargetKind, Window
from l2chaos.rundir import RunDir
from l2chaos.scenario import FaultUse
from l2chaos.timeline import Timeline

NONE: Any = None  # the timeline's faults here touch nothing of the context
MS = 1_000_000


class Recording(Fault[NoParams]):
    """A fault that records when it was injected and healed (a plug-in like a user's)."""

    name = "test.recording"
    summary = "records calls"
    window = Window.OPTIONAL

    def __init__(self, label: str, calls: list[tuple[str, str, float]]) -> None:
        super().__init__(Target(TargetKind.NONE), NoParams(), None)
        self.label = label
        self.calls = calls
        self.lock = threading.Lock()

    def inject(self, ctx: FaultContext) -> dict[str, Any]:
        with self.lock:
            self.calls.append(("inject", self.label, time.monotonic()))
        ctx.note(step="inside", label=self.label)
        return {"label": self.label}

    def heal(self, ctx: FaultContext) -> dict[str, Any]:
        with self.lock:
            self.calls.append(("heal", self.label, time.monotonic()))
        return {}


class Broken(Recording):
    def inject(self, ctx: FaultContext) -> dict[str, Any]:
        raise RuntimeError("cannot inject")


def use(i: int, fault: Fault[Any], at_ms: int, for_ms: int | None) -> FaultUse:
    return FaultUse(
        i, f"f{i}", fault, at_ms * 1_000_000, None if for_ms is None else for_ms * 1_000_000
    )


def wait_for(cond: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def run(
    tmp_path: Path, uses: list[FaultUse], until: Callable[[Timeline], bool] | None = None
) -> tuple[list[dict[str, Any]], Timeline, int]:
    """Play `uses` until every entry has played out (or `until` holds), then heal_all."""
    rd = RunDir.create(tmp_path, "t")
    t0 = time.monotonic_ns()
    tl = Timeline(
        uses,
        lambda u, note: FaultContext(NONE, NONE, NONE, NONE, NONE, note=note),
        rd.jsonl("faults.jsonl"),
        t0,
    )
    tl.start()
    if until is None:
        assert tl.wait_done(30), "the timeline never played out"
    else:
        wait_for(lambda: until(tl))
    tl.heal_all()
    rd.close()
    records = [json.loads(x) for x in (rd.path / "faults.jsonl").read_text().splitlines()]
    return records, tl, t0


def test_schedule_lateness_and_heal_after_window(tmp_path: Path) -> None:
    calls: list[tuple[str, str, float]] = []
    a, b = Recording("a", calls), Recording("b", calls)
    records, tl, t0 = run(tmp_path, [use(0, a, 100, 300), use(1, b, 200, None)])
    t = {(kind, label): (when * 1e9 - t0) / 1e6 for kind, label, when in calls}
    assert len(t) == 4
    assert t[("inject", "a")] >= 100  # never before its time
    assert t[("heal", "a")] >= 400  # nor healed before its window is over
    assert t[("inject", "b")] >= 200
    assert t[("heal", "b")] >= t[("inject", "b")]  # no window: healed right after
    injects = [r for r in records if r["action"] == "inject"]
    assert sorted(r["label"] for r in injects) == ["f0", "f1"]
    for r in records:
        if r["action"] in ("inject", "heal"):  # lateness is measured, on the run's clock
            assert r["ok"]
            assert r["lateness_ms"] >= 0
            assert r["lateness_ms"] == round((r["mono_ns"] - t0 - r["scheduled_ns"]) / 1e6, 3)
    due = {r["action"]: r["scheduled_ns"] for r in records if r["label"] == "f0"}
    assert due == {"inject": 100 * MS, "note": None, "heal": 400 * MS}
    notes = [r for r in records if r["action"] == "note"]
    assert sorted(n["details"]["label"] for n in notes) == ["a", "b"]
    assert tl.errors() == []


class Blocking(Recording):
    """An inject that returns only once `release` is set (or 30 s passed)."""

    def __init__(self, label: str, calls: list[tuple[str, str, float]]) -> None:
        super().__init__(label, calls)
        self.release = threading.Event()
        self.released = False

    def inject(self, ctx: FaultContext) -> dict[str, Any]:
        self.released = self.release.wait(30)
        return super().inject(ctx)


class Releasing(Recording):
    """An inject that releases another entry's blocked inject."""

    def __init__(self, label: str, calls: list[tuple[str, str, float]], other: Blocking) -> None:
        super().__init__(label, calls)
        self.other = other

    def inject(self, ctx: FaultContext) -> dict[str, Any]:
        self.other.release.set()
        return super().inject(ctx)


def test_a_slow_inject_does_not_delay_the_next_fault(tmp_path: Path) -> None:
    """The slow inject can only end once the next entry was injected: on a timeline
    that played entries one after another it would wait out its 30 s instead."""
    calls: list[tuple[str, str, float]] = []
    slow = Blocking("slow", calls)
    fast = Releasing("fast", calls, slow)
    run(tmp_path, [use(0, slow, 0, 100), use(1, fast, 100, 100)])
    assert slow.released, "the next entry's inject waited behind the slow one"
    order = [(kind, label) for kind, label, _ in calls]
    assert order.index(("inject", "slow")) < order.index(("heal", "slow"))  # never overtaken


def test_heal_all_heals_what_is_still_injected_and_failures_are_recorded(tmp_path: Path) -> None:
    calls: list[tuple[str, str, float]] = []
    long, broken = Recording("long", calls), Broken("broken", calls)
    records, tl, _ = run(
        tmp_path,
        [use(0, long, 0, 60_000), use(1, broken, 50, 60_000)],
        until=lambda tl: bool(tl.errors()) and bool(calls),  # both injects were tried
    )
    # A failed inject is healed too (a partial inject must be cleaned up), newest first.
    assert [(k, lbl) for k, lbl, _ in calls] == [
        ("inject", "long"),
        ("heal", "broken"),
        ("heal", "long"),
    ]
    heal = [r for r in records if r["action"] == "heal" and r["label"] == "f0"]
    assert heal
    assert heal[0]["scheduled_ns"] is None
    failed = [r for r in records if r["label"] == "f1" and r["action"] == "inject"]
    assert failed[0]["ok"] is False
    assert "cannot inject" in failed[0]["error"]
    assert tl.errors() == ["f1: inject: cannot inject"]


def test_nothing_runs_after_heal_all(tmp_path: Path) -> None:
    calls: list[tuple[str, str, float]] = []
    late = Recording("late", calls)
    records, tl, _ = run(tmp_path, [use(0, late, 5000, 100)], until=lambda tl: True)
    assert tl.wait_done(0)  # its thread has ended: nothing can inject it any more
    assert calls == []
    assert [r["action"] for r in records] == ["missed"]
    assert tl.active() == []


class Exclusive(Recording):
    """Two of these on one resource: a slow heal of the first must finish before the
    second's inject (else the heal would undo the new fault)."""

    def __init__(
        self, label: str, calls: list[tuple[str, str, float]], heal_s: float = 0.0
    ) -> None:
        super().__init__(label, calls)
        self.heal_s = heal_s

    def resources(self) -> set[str]:
        return {"oracle-mode"}

    def heal(self, ctx: FaultContext) -> dict[str, Any]:
        time.sleep(self.heal_s)
        return super().heal(ctx)


def test_back_to_back_faults_on_one_resource_do_not_race(tmp_path: Path) -> None:
    calls: list[tuple[str, str, float]] = []
    first, second = Exclusive("first", calls, heal_s=0.3), Exclusive("second", calls)
    run(tmp_path, [use(0, first, 0, 200), use(1, second, 200, 300)])
    order = [(kind, label) for kind, label, _ in calls]
    assert order == [
        ("inject", "first"),
        ("heal", "first"),
        ("inject", "second"),
        ("heal", "second"),
    ]


def test_progress_prints_each_fault_change_as_it_happens(tmp_path: Path) -> None:
    """Progress listens to the run's events: a fault's inject and heal get a line each,
    at the time the timeline recorded them."""
    import io

    from l2chaos.events import Events
    from l2chaos.progress import Progress

    out = io.StringIO()
    p = Progress(out, "demo", "hardened", 60_000_000_000)
    events = Events()
    p.listen(events)
    calls: list[tuple[str, str, float]] = []
    rd = RunDir.create(tmp_path, "t")
    t0 = time.monotonic_ns()
    tl = Timeline(
        [use(0, Recording("db", calls), 0, 100)],
        lambda u, note: FaultContext(NONE, NONE, NONE, NONE, NONE, note=note),
        rd.jsonl("faults.jsonl"),
        t0,
        on_action=events.fault_acted,
    )
    tl.start()
    assert tl.wait_done(30)
    tl.heal_all()
    rd.close()
    lines = [ln for ln in out.getvalue().splitlines() if "injected" in ln or "healed" in ln]
    assert lines == [
        "[l2chaos] 00:00 injected test.recording(-)",
        "[l2chaos] 00:00 healed test.recording(-)",
    ], out.getvalue()
    assert events.problems.items() == []


class SignallingHeal(Exclusive):
    """Its heal says when it has begun, then takes `heal_s`."""

    def __init__(self, label: str, calls: list[tuple[str, str, float]], heal_s: float) -> None:
        super().__init__(label, calls, heal_s=heal_s)
        self.healing = threading.Event()

    def heal(self, ctx: FaultContext) -> dict[str, Any]:
        self.healing.set()
        return super().heal(ctx)


def _thread_alive(name: str) -> bool:
    return any(t.name == name and t.is_alive() for t in threading.enumerate())


def test_heal_all_while_an_inject_waits_for_the_previous_heal(tmp_path: Path) -> None:
    """inject a, heal a (slow), inject b waiting for it, then the run ends: b must not be
    injected after heal_all looked (it would never be healed)."""
    calls: list[tuple[str, str, float]] = []
    first = SignallingHeal("first", calls, heal_s=0.5)
    second = Exclusive("second", calls)
    rd = RunDir.create(tmp_path, "t")
    tl = Timeline(
        [use(0, first, 0, 100), use(1, second, 100, 60_000)],
        lambda u, note: FaultContext(NONE, NONE, NONE, NONE, NONE, note=note),
        rd.jsonl("faults.jsonl"),
        time.monotonic_ns(),
    )
    tl.start()
    # The second's trigger (100 ms) has fired by the time the first heals (at 100 ms,
    # for 0.5 s): it waits for the resource while heal_all comes.
    assert first.healing.wait(30), "the first fault's heal never began"
    tl.heal_all()
    rd.close()
    assert not _thread_alive("fault-1")
    order = [(kind, label) for kind, label, _ in calls]
    injected = {label for kind, label in order if kind == "inject"}
    healed = {label for kind, label in order if kind == "heal"}
    assert injected <= healed, order  # whatever was injected was healed
    assert order[:2] == [("inject", "first"), ("heal", "first")]
    records = [json.loads(x) for x in (rd.path / "faults.jsonl").read_text().splitlines()]
    if "second" not in injected:  # not injected, and the record says why
        assert [r["action"] for r in records if r["label"] == "f1"] == ["missed"]
    assert tl.active() == []


class FailsInside(Recording):
    """Like a nemesis whose drawn fault failed: it says so in a note, not by raising."""

    def inject(self, ctx: FaultContext) -> dict[str, Any]:
        ctx.note(step="inject", fault="network.down", error="toxiproxy refused")
        return {}


def test_an_error_in_a_note_is_a_failure_of_the_fault(tmp_path: Path) -> None:
    calls: list[tuple[str, str, float]] = []
    records, tl, _ = run(tmp_path, [use(0, FailsInside("n", calls), 0, None)])
    assert tl.errors() == ["f0: inject: toxiproxy refused"]
    note = next(r for r in records if r["action"] == "note")
    assert note["ok"] is False
    assert note["error"] == "toxiproxy refused"
