"""Plays a scenario's fault timeline against a running stack.

One scheduler thread sleeps until each action is due and hands it to a worker thread,
so a slow action (a database restart) never delays the next one. Every action is
recorded in faults.jsonl with its scheduled time, actual time and lateness on the
run's shared clock. A heal never runs before its inject has finished. `heal_all`
stops the schedule and heals whatever is still injected (at the end, on abort, on
Ctrl-C), newest first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .rundir import JsonlWriter
from .scenario import FaultUse

__all__ = ["FaultState", "Timeline"]


@dataclass
class FaultState:
    use: FaultUse
    injected: threading.Event = field(default_factory=threading.Event)
    inject_done: threading.Event = field(default_factory=threading.Event)
    healed: bool = False
    heal_done: threading.Event = field(default_factory=threading.Event)
    inject_ok: bool = False
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Timeline:
    def __init__(
        self,
        uses: Sequence[FaultUse],
        context_for: Callable[[FaultUse, Callable[..., None]], Any],
        log: JsonlWriter,
        t0_mono_ns: int,
    ) -> None:
        self._uses = list(uses)
        self._context_for = context_for
        self._log = log
        self._t0 = t0_mono_ns
        self._states = [FaultState(u) for u in self._uses]
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._workers_lock = threading.Lock()
        self._scheduler: threading.Thread | None = None
        self._ctx: dict[int, Any] = {}

    # ----------------------------------------------------------------- schedule

    def _actions(self) -> list[tuple[int, int, str, FaultState]]:
        out: list[tuple[int, int, str, FaultState]] = []
        for i, st in enumerate(self._states):
            out.append((st.use.at_ns, i, "inject", st))
            if st.use.for_ns is not None:
                out.append((st.use.at_ns + st.use.for_ns, i, "heal", st))
            else:  # instant, or optional without `for`: heal right after the inject
                out.append((st.use.at_ns, i, "heal", st))
        # At one instant heals go first: a fault ending at 20s frees its resource for
        # the one starting at 20s.
        return sorted(out, key=lambda a: (a[0], a[2] != "heal", a[1]))

    def start(self) -> None:
        self._scheduler = threading.Thread(target=self._run, name="timeline", daemon=True)
        self._scheduler.start()

    def _run(self) -> None:
        for due_ns, _, action, st in self._actions():
            wait_s = (self._t0 + due_ns - time.monotonic_ns()) / 1e9
            if wait_s > 0 and self._stop.wait(wait_s):
                return
            if self._stop.is_set():
                return
            worker = threading.Thread(
                target=self._inject if action == "inject" else self._heal,
                args=(st, due_ns),
                name=f"fault-{st.use.index}-{action}",
                daemon=True,
            )
            with self._workers_lock:
                self._workers.append(worker)
            worker.start()

    def active(self) -> list[str]:
        return [
            f"{st.use.name}({st.use.fault.target})"
            for st in self._states
            if st.injected.is_set() and not st.healed
        ]

    # ----------------------------------------------------------------- actions

    def _context(self, st: FaultState) -> Any:
        if st.use.index not in self._ctx:

            def note(**fields: Any) -> None:
                self._record(st, "note", None, ok=True, details=fields)

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
    ) -> None:
        t_ns, mono = time.time_ns(), time.monotonic_ns()
        start = started_mono if started_mono is not None else mono
        lateness = None if scheduled_ns is None else (start - self._t0 - scheduled_ns) / 1e6
        self._log.write(
            {
                "fault_id": st.use.index,
                "label": st.use.label,
                "name": st.use.name,
                "target": str(st.use.fault.target),
                "action": action,
                "params": st.use.fault.p,
                "scheduled_ns": scheduled_ns,
                "t_ns": t_ns - (mono - start),
                "mono_ns": start,
                "done_mono_ns": mono,
                "lateness_ms": None if lateness is None else round(lateness, 3),
                "took_ms": round((mono - start) / 1e6, 3),
                "ok": ok,
                "error": error,
                "details": details,
            }
        )

    def _wait_for_predecessors(self, st: FaultState) -> None:
        """Back-to-back faults on one resource: the earlier one's heal (running on its
        own thread at the same moment) must finish before this inject, or it would undo
        the new fault."""
        mine = st.use.fault.resources()
        if not mine:
            return
        for other in self._states:
            if other is st or other.use.at_ns >= st.use.at_ns or other.use.end_ns > st.use.at_ns:
                continue
            if other.use.fault.resources() & mine and other.injected.is_set():
                other.heal_done.wait(timeout=120)

    def _inject(self, st: FaultState, due_ns: int) -> None:
        started = time.monotonic_ns()
        self._wait_for_predecessors(st)
        with st.lock:
            st.injected.set()
            try:
                details = st.use.fault.inject(self._context(st))
                st.inject_ok = True
                self._record(st, "inject", due_ns, ok=True, details=details, started_mono=started)
            except Exception as exc:
                st.errors.append(f"inject: {exc}")
                self._record(st, "inject", due_ns, ok=False, error=str(exc), started_mono=started)
            finally:
                st.inject_done.set()

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
                st.heal_done.set()

    # ----------------------------------------------------------------- ending

    def wait_done(self, timeout_s: float) -> bool:
        """Wait until every scheduled action ran (or the timeout)."""
        deadline = time.monotonic() + timeout_s
        if self._scheduler is not None:
            self._scheduler.join(max(0.0, deadline - time.monotonic()))
        for w in list(self._workers):
            w.join(max(0.0, deadline - time.monotonic()))
        return all(not w.is_alive() for w in self._workers)

    def heal_all(self, timeout_s: float = 120.0) -> None:
        """Stop scheduling; heal every fault still injected, newest first."""
        self._stop.set()
        if self._scheduler is not None:
            self._scheduler.join(timeout=5)
        deadline = time.monotonic() + timeout_s
        for st in self._states:
            if st.injected.is_set():
                st.inject_done.wait(max(0.0, deadline - time.monotonic()))
        for st in reversed(self._states):
            if st.injected.is_set() and not st.healed:
                self._heal(st, None)
        for w in list(self._workers):
            w.join(max(0.0, deadline - time.monotonic()))

    def errors(self) -> list[str]:
        return [f"{st.use.label}: {e}" for st in self._states for e in st.errors]
