"""Plays a scenario's fault timeline against a running stack.

Each entry gets its own thread: it waits for the entry's trigger (a time, a block
height, another entry's inject or heal, an event; see `l2chaos.triggers`), injects,
waits out the window and heals, so a slow action (a database restart) never delays
another entry. Every action is recorded in faults.jsonl with its trigger, its
scheduled time, actual time and lateness on the run's shared clock, and the block
height it happened at (with the lateness in blocks for block and event triggers), and
handed to `on_action` (the run's fault_injected / fault_healed events).

Entries that need the same resource never act at once: an inject waits until every
other entry holding one of its resources has healed (back-to-back faults: the earlier
one's heal runs first; a trigger that fires while the resource is taken: it waits,
and its lateness shows it). `heal_all` stops the timeline and heals whatever is still
injected (at the end, on abort, on Ctrl-C), newest first; an entry whose trigger never
fired is recorded as `missed`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .params import to_json
from .rundir import JsonlWriter
from .rundir.faults import FaultAction
from .scenario import FaultUse
from .signals import Signals
from .triggers import AfterFault, AtBlock, AtTime, OnEvent

__all__ = ["FaultState", "Firing", "Timeline"]


@dataclass(frozen=True)
class Firing:
    """A trigger that fired: when the inject is due and what the chain looked like."""

    due_ns: int  # from time zero
    block: int | None = None  # the height when it fired
    target_block: int | None = None  # the height it aimed at (block / event triggers)
    fired_by: dict[str, Any] | None = None


@dataclass
class FaultState:
    use: FaultUse
    injected: threading.Event = field(default_factory=threading.Event)
    inject_done: threading.Event = field(default_factory=threading.Event)
    healed: bool = False
    heal_done: threading.Event = field(default_factory=threading.Event)
    inject_ok: bool = False
    inject_mono: int = 0
    inject_done_mono: int = 0
    heal_done_mono: int = 0
    errors: list[str] = field(default_factory=list)
    missed: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class Timeline:
    def __init__(
        self,
        uses: Sequence[FaultUse],
        context_for: Callable[[FaultUse, Callable[..., None]], Any],
        log: JsonlWriter,
        t0_mono_ns: int,
        signals: Signals | None = None,
        on_action: Callable[[FaultAction], None] | None = None,
    ) -> None:
        self._uses = list(uses)
        self._on_action = on_action
        self._context_for = context_for
        self._log = log
        self._t0 = t0_mono_ns
        self._signals = signals or Signals()
        self._states = [FaultState(u) for u in self._uses]
        self._by_label = {st.use.label: st for st in self._states}
        self._stop = threading.Event()
        # Guards who holds a resource, and the decision to inject against `heal_all`.
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._ctx: dict[int, Any] = {}

    def start(self) -> None:
        for st in self._states:
            thread = threading.Thread(
                target=self._play, args=(st,), name=f"fault-{st.use.index}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def active(self) -> list[str]:
        return [
            f"{st.use.name}({st.use.fault.target})"
            for st in self._states
            if st.injected.is_set() and not st.healed
        ]

    # ----------------------------------------------------------------- playing

    def _play(self, st: FaultState) -> None:
        firing = self._await_trigger(st)
        if firing is None or not self._sleep_until(firing.due_ns):
            return
        if not self._inject(st, firing):
            return
        heal_due = firing.due_ns + (st.use.for_ns or 0)
        if self._sleep_until(heal_due):
            self._heal(st, heal_due)

    def _sleep_until(self, due_ns: int) -> bool:
        """False when the timeline was stopped first."""
        wait_s = (self._t0 + due_ns - time.monotonic_ns()) / 1e9
        if wait_s > 0:
            return not self._stop.wait(wait_s)
        return not self._stop.is_set()

    def _await_trigger(self, st: FaultState) -> Firing | None:
        trig = st.use.trigger
        if trig is None or isinstance(trig, AtTime):
            return Firing(st.use.at_ns)
        if isinstance(trig, AtBlock):
            return self._await_block(st, trig)
        if isinstance(trig, AfterFault):
            return self._await_fault(st, trig)
        return self._await_event(st, trig)

    def _await_block(self, st: FaultState, trig: AtBlock) -> Firing | None:
        sig = self._signals
        if sig.heights is None or (trig.relative and sig.baseline_height is None):
            st.missed = "no block heights were observed (the stack has no block height probe)"
            return None
        target = trig.target(sig.baseline_height or 0)
        seen = sig.heights.wait_for(target, self._stop)
        if seen is None:
            st.missed = f"block {target} not reached by the end of the run (last block {sig.heights.latest()})"
            return None
        return Firing(seen.mono_ns - self._t0, seen.height, target)

    def _await_fault(self, st: FaultState, trig: AfterFault) -> Firing | None:
        other = self._by_label[trig.label]
        done = other.inject_done if trig.phase == "injected" else other.heal_done
        for _ in range(100_000_000):  # bounded; the stop ends it
            if self._stop.is_set():
                st.missed = f"{trig.label} was not {trig.phase} before the end of the run"
                return None
            if done.wait(0.25):
                break
        at = other.inject_done_mono if trig.phase == "injected" else other.heal_done_mono
        fired_by = {"fault": trig.label, "phase": trig.phase}
        return Firing(at - self._t0 + trig.delay_ns, fired_by=fired_by)

    def _await_event(self, st: FaultState, trig: OnEvent) -> Firing | None:
        feed = self._signals.events
        if feed is None:
            st.missed = f"no event feed for {trig.event!r}"
            return None
        seen = feed.wait_for(trig.event, trig.not_before_ns, self._stop)
        if seen is None:
            st.missed = f"no {trig.event!r} event before the end of the run"
            return None
        return Firing(seen.offset_ns + trig.delay_ns, None, seen.block, seen.to_json())

    # ----------------------------------------------------------------- actions

    def _context(self, st: FaultState) -> Any:
        if st.use.index not in self._ctx:

            def note(**fields: Any) -> None:
                # A note with an `error` (a nemesis's drawn fault that failed, a crash
                # loop that stopped) is a failure of the fault like a failed inject: it
                # reaches run.json's problems and the exit code, not only the log.
                error = fields.get("error")
                if error:
                    st.errors.append(f"{fields.get('step') or 'note'}: {error}")
                self._record(
                    st,
                    "note",
                    None,
                    ok=not error,
                    details=fields,
                    error=str(error) if error else None,
                )

            self._ctx[st.use.index] = self._context_for(st.use, note)
        return self._ctx[st.use.index]

    def _record(
        self,
        st: FaultState,
        action: str,
        scheduled_ns: int | None,
        *,
        ok: bool,
        details: Any = None,
        error: str | None = None,
        started_mono: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        t_ns, mono = time.time_ns(), time.monotonic_ns()
        start = started_mono if started_mono is not None else mono
        lateness = None if scheduled_ns is None else (start - self._t0 - scheduled_ns) / 1e6
        heights = self._signals.heights
        fields: dict[str, Any] = {"block": None if heights is None else heights.latest()}
        fields.update(extra or {})
        record = FaultAction(
            fault_id=st.use.index,
            label=st.use.label,
            name=st.use.name,
            target=str(st.use.fault.target),
            action=action,
            params=to_json(st.use.fault.p),
            scheduled_ns=scheduled_ns,
            t_ns=t_ns - (mono - start),
            mono_ns=start,
            done_mono_ns=mono,
            lateness_ms=None if lateness is None else round(lateness, 3),
            took_ms=round((mono - start) / 1e6, 3),
            ok=ok,
            error=error,
            details=details,
            **fields,
        )
        self._log.write(record.to_json())
        if self._on_action is not None:
            self._on_action(record)

    def _holders(self, st: FaultState) -> list[FaultState]:
        """Other entries holding one of this entry's resources right now."""
        mine = st.use.fault.resources()
        if not mine:
            return []
        return [
            o
            for o in self._states
            if o is not st
            and o.injected.is_set()
            and not o.heal_done.is_set()
            and o.use.fault.resources() & mine
        ]

    def _claim(self, st: FaultState) -> list[str] | None:
        """Wait until this entry's resources are free, then mark it injected (so
        `heal_all` heals it). The labels it waited for; None when stopped first."""
        waited: list[str] = []
        with self._cond:
            for _ in range(100_000_000):  # bounded; heals and the stop end it
                if self._stop.is_set():
                    return None
                holders = self._holders(st)
                if not holders:
                    st.injected.set()
                    return waited
                waited.extend(h.use.label for h in holders if h.use.label not in waited)
                self._cond.wait(0.5)
        return None

    def _height(self, firing: Firing) -> int | None:
        """The height now: polled when it is compared with a target (an event's block),
        else the probe loop's latest."""
        heights = self._signals.heights
        if heights is None:
            return None
        return heights.fresh() if firing.target_block is not None else heights.latest()

    def _inject(self, st: FaultState, firing: Firing) -> bool:
        waited = self._claim(st)
        if waited is None:
            st.missed = "the run ended while it waited for its resources"
            return False
        started = time.monotonic_ns()  # the lateness includes any wait for a resource
        block = firing.block if firing.block is not None else self._height(firing)
        trig = st.use.trigger or AtTime(st.use.at_ns)
        extra = {
            "trigger": trig.to_json(),
            "trigger_text": trig.describe(),
            "block": block,
            "target_block": firing.target_block,
            "lateness_blocks": None
            if block is None or firing.target_block is None
            else block - firing.target_block,
            "fired_by": firing.fired_by,
            "waited_for": waited or None,
        }
        with st.lock:
            st.inject_mono = started
            try:
                details = st.use.fault.inject(self._context(st))
                st.inject_ok = True
                self._record(
                    st, "inject", firing.due_ns, ok=True, details=details,
                    started_mono=started, extra=extra,
                )  # fmt: skip
            except Exception as exc:
                st.errors.append(f"inject: {exc}")
                self._record(
                    st, "inject", firing.due_ns, ok=False, error=str(exc),
                    started_mono=started, extra=extra,
                )  # fmt: skip
            finally:
                st.inject_done_mono = time.monotonic_ns()
                st.inject_done.set()
        return True

    def _heal(self, st: FaultState, due_ns: int | None) -> None:
        st.inject_done.wait(timeout=300)
        started = time.monotonic_ns()
        with st.lock:
            if st.healed or not st.injected.is_set():
                return
            st.healed = True
            try:
                details = st.use.fault.heal(self._context(st))
                self._record(st, "heal", due_ns, ok=True, details=details, started_mono=started)
            except Exception as exc:
                st.errors.append(f"heal: {exc}")
                self._record(st, "heal", due_ns, ok=False, error=str(exc), started_mono=started)
            finally:
                st.heal_done_mono = time.monotonic_ns()
                st.heal_done.set()
                with self._cond:
                    self._cond.notify_all()

    # ----------------------------------------------------------------- ending

    def wait_done(self, timeout_s: float) -> bool:
        """Wait until every entry has played out (or the timeout)."""
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return all(not t.is_alive() for t in self._threads)

    def heal_all(self, timeout_s: float = 120.0) -> None:
        """Stop the timeline; heal every fault still injected, newest first; record the
        entries whose trigger never fired."""
        with self._cond:  # no inject can start after this
            self._stop.set()
            self._cond.notify_all()
        deadline = time.monotonic() + timeout_s
        for st in self._states:
            if st.injected.is_set():
                st.inject_done.wait(max(0.0, deadline - time.monotonic()))
        for st in sorted(self._states, key=lambda s: s.inject_mono, reverse=True):
            if st.injected.is_set() and not st.healed:
                self._heal(st, None)
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for st in self._states:
            if not st.injected.is_set():
                self._record_missed(st)

    def _record_missed(self, st: FaultState) -> None:
        trig = st.use.trigger or AtTime(st.use.at_ns)
        st.missed = st.missed or "the run ended before its trigger fired"
        self._record(
            st, "missed", None, ok=False, error=st.missed,
            extra={"trigger": trig.to_json(), "trigger_text": trig.describe()},
        )  # fmt: skip

    def errors(self) -> list[str]:
        """Injects and heals that failed."""
        return [f"{st.use.label}: {e}" for st in self._states for e in st.errors]

    def missed(self) -> list[str]:
        """Entries whose trigger never fired, and why."""
        return [
            f"{st.use.label}: never fired ({(st.use.trigger or AtTime(st.use.at_ns)).describe()}): {st.missed}"
            for st in self._states
            if st.missed is not None and not st.injected.is_set()
        ]
