"""A seeded random nemesis: over its window it draws faults from a list at a rate,
holds each for a while and heals it, like Jepsen's nemesis generators. Every draw comes
from the scenario seed, so a failing soak replays."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence

from l2chaos.durations import Duration
from l2chaos.errors import FaultError
from l2chaos.fault_entry import FaultUse, parse_fault_entry
from l2chaos.params import JsonValue, Where, param, params, required
from l2chaos.stackspec import StackSpec

from .base import Details, Fault, FaultContext, Target, TargetKind, Window


@params
class NemesisParams:
    faults: Sequence[Mapping[str, object]] = required(
        "the catalogue to draw from: [{fault, target, with, for}]"
    )
    every: tuple[Duration, Duration] = param(
        (Duration.of(s=5), Duration.of(s=15)), "pause between faults", schedule=True
    )
    hold: tuple[Duration, Duration] = param(
        (Duration.of(s=2), Duration.of(s=8)),
        "how long a drawn fault lasts when its entry has no `for`",
        schedule=True,
    )


class RandomNemesis(Fault[NemesisParams]):
    name = "nemesis.random"
    summary = (
        "Over its window, every `every` (a random time within the range) injects one fault drawn "
        "from `faults` (entries like timeline entries, without `at`), holds it for its `for` or "
        "a random `hold`, then heals it."
    )
    target_kind = TargetKind.NONE
    window = Window.REQUIRED

    def __init__(self, target: Target, params: NemesisParams, duration: Duration | None) -> None:
        super().__init__(target, params, duration)
        self._choices: list[FaultUse] = []  # one per catalogue entry
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._active: FaultUse | None = None
        self._lock = threading.Lock()

    def prepare(self, stack: StackSpec, where: Where, time_scale: float) -> None:
        entries = self.p.faults
        if not entries:
            raise where.child("faults").error("expected at least one fault to draw from", entries)
        for i, entry in enumerate(entries):
            use = parse_fault_entry(
                entry,
                where.child("faults").child(i),
                stack,
                time_scale,
                index=i,
                container=entries,
                need_at=False,
                window_given=True,  # the nemesis holds each drawn fault for `hold`
            )
            if use.fault.name == self.name:
                raise (
                    where.child("faults")
                    .child(i)
                    .error("a nemesis cannot draw another nemesis", entry)
                )
            self._choices.append(use)

    def platform_needs(self) -> frozenset[str]:
        return frozenset().union(*(use.fault.platform_needs() for use in self._choices))

    def resources(self) -> set[str]:
        out: set[str] = set()
        for use in self._choices:
            out |= use.fault.resources()
        return out

    def inject(self, ctx: FaultContext) -> Details:
        if not self._choices:
            raise FaultError("nemesis.random has nothing to draw from")
        self._stop.clear()
        deadline = time.monotonic() + (self.duration.seconds if self.duration else 0.0)
        self._thread = threading.Thread(
            target=self._loop, args=(ctx, deadline), name="nemesis", daemon=True
        )
        self._thread.start()
        catalogue: list[JsonValue] = [u.label for u in self._choices]
        return {"catalogue": catalogue}

    def _loop(self, ctx: FaultContext, deadline: float) -> None:
        lo, hi = (d.ns for d in self.p.every)
        hold_lo, hold_hi = (d.ns for d in self.p.hold)
        for _ in range(100_000):  # bounded; the deadline ends it long before
            pause = ctx.rng.uniform(lo, hi) / 1e9
            if self._stop.wait(min(pause, max(0.0, deadline - time.monotonic()))):
                return
            use = ctx.rng.choice(self._choices)
            hold = (
                use.for_ns if use.for_ns is not None else ctx.rng.uniform(hold_lo, hold_hi)
            ) / 1e9
            hold = min(hold, max(0.0, deadline - time.monotonic()))
            if hold <= 0:
                return
            self._run_one(ctx, use, hold)

    def _run_one(self, ctx: FaultContext, use: FaultUse, hold: float) -> None:
        with self._lock:
            self._active = use
        # what `l2chaos shrink` needs to replay the draw as a timeline entry
        drawn = {
            "fault": use.fault.name,
            "target": str(use.fault.target),
            "entry": use.index,
            "started_t_ns": time.time_ns(),
            "hold_ns": round(hold * 1e9),
        }
        try:
            details = use.fault.inject(ctx)
            ctx.note(step="inject", **drawn, details=details)
        except Exception as exc:  # recorded, and the nemesis goes on: one failed draw is data
            ctx.note(step="inject", **drawn, error=str(exc))
        self._stop.wait(hold)
        self._heal_active(ctx)

    def _heal_active(self, ctx: FaultContext) -> None:
        with self._lock:
            use, self._active = self._active, None
        if use is None:
            return
        try:
            details = use.fault.heal(ctx)
            ctx.note(
                step="heal", fault=use.fault.name, target=str(use.fault.target), details=details
            )
        except Exception as exc:
            ctx.note(
                step="heal", fault=use.fault.name, target=str(use.fault.target), error=str(exc)
            )

    def heal(self, ctx: FaultContext) -> Details:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        self._heal_active(ctx)
        return {}
