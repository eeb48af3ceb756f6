"""Live progress of a run on the terminal, a listener of the run's events: phase,
elapsed/remaining, active faults, blocks and probe health. On a TTY one line is
redrawn in place; otherwise (CI logs) a line is printed every 10 seconds. Phase
changes and every fault injected or healed get a line of their own, when they happen."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from .events import Events
from .rundir.faults import FaultAction

if TYPE_CHECKING:
    from .backends.base import RunningStack
    from .probe import Sample
    from .scenario import Scenario

__all__ = ["Progress"]


def _clock(ns: int) -> str:
    s = max(0, ns) // 1_000_000_000
    return f"{s // 60:02d}:{s % 60:02d}"


class Progress:
    def __init__(
        self,
        stream: TextIO,
        scenario: str,
        profile: str | None,
        duration_ns: int,
        *,
        enabled: bool = True,
    ) -> None:
        self._out = stream
        self._name = scenario if profile is None else f"{scenario} [{profile}]"
        self._duration = duration_ns
        self._enabled = enabled
        self._tty = enabled and hasattr(stream, "isatty") and stream.isatty()
        self._last_plain = 0.0
        self._redraw = False
        self._lock = threading.Lock()  # fault events come from the faults' threads
        self._t0_ns: int | None = None
        self._active: dict[str, str] = {}  # label -> "name(target)"
        self._sample: Sample | None = None

    def listen(self, events: Events) -> None:
        events.run_started.add_listener(self._on_run_started)
        events.stack_ready.add_listener(self._on_stack_ready)
        events.baseline_passed.add_listener(self._on_baseline_passed)
        events.fault_injected.add_listener(self._on_fault)
        events.fault_healed.add_listener(self._on_fault)
        events.probe_sample.add_listener(self._on_probe_sample)

    # ------------------------------------------------------------------ listeners

    def _on_run_started(
        self, *, run_id: str, run_dir: Path, scenario: Scenario, backend: str, **_: object
    ) -> None:
        self.line(f"run {run_id} on the {backend} backend; record in {run_dir}")

    def _on_stack_ready(
        self, *, stack: RunningStack, versions: dict[str, str], **_: object
    ) -> None:
        self.line("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))

    def _on_baseline_passed(self, *, sample: Sample, t0_ns: int, **_: object) -> None:
        self._t0_ns = t0_ns
        self._sample = sample

    def _on_probe_sample(self, *, sample: Sample, **_: object) -> None:
        self._sample = sample

    def _on_fault(self, *, action: FaultAction, **_: object) -> None:
        what = f"{action.name}({action.target})"
        at = _clock(action.t_ns - (self._t0_ns or action.t_ns))
        if action.action == "inject":
            self._active[action.label] = what
            self.line(f"{at} injected {what}" if action.ok else f"{at} inject of {what} failed")
        else:
            self._active.pop(action.label, None)
            self.line(f"{at} healed {what}" if action.ok else f"{at} heal of {what} failed")

    # ------------------------------------------------------------------ output

    def _write(self, text: str) -> None:
        with self._lock:
            if self._redraw:
                self._out.write("\r\x1b[2K")
                self._redraw = False
            self._out.write(text + "\n")
            self._out.flush()

    def line(self, text: str) -> None:
        if self._enabled:
            self._write(f"[l2chaos] {text}")

    def phase(self, name: str) -> None:
        if self._enabled:
            self._write(f"[l2chaos] {self._name}: {name}")

    def tick(self, elapsed_ns: int) -> None:
        """The status line: elapsed time, the faults active, the latest sample."""
        if not self._enabled:
            return
        active = list(self._active.values())
        parts = [f"{_clock(elapsed_ns)}/{_clock(self._duration)}"]
        parts.append("faults: " + (", ".join(active) if active else "none"))
        sample = self._sample
        if sample is not None:
            down = [s for s, ok in sample.health.items() if not ok]
            parts.append(f"block {sample.block_height if sample.block_height is not None else '?'}")
            parts.append("down: " + ", ".join(down) if down else "all healthy")
            if sample.order_ok is not None:
                parts.append("orders ok" if sample.order_ok else "orders failing")
        text = " | ".join(parts)
        if self._tty:
            with self._lock:
                self._out.write("\r\x1b[2K" + text[:200])
                self._out.flush()
                self._redraw = True
        elif time.monotonic() - self._last_plain >= 10:
            self._last_plain = time.monotonic()
            self._write(f"[l2chaos] {text}")

    def done(self) -> None:
        with self._lock:
            if self._redraw:
                self._out.write("\r\x1b[2K")
                self._out.flush()
                self._redraw = False
