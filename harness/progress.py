"""Live progress of a run on the terminal: phase, elapsed/remaining, active faults,
blocks and probe health. On a TTY one line is redrawn in place; otherwise (CI logs) a
line is printed every 10 seconds. Phase changes and every fault injected or healed get
a line of their own."""

from __future__ import annotations

import time
from typing import Any, TextIO

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
        self._active: list[str] = []

    def _write(self, text: str) -> None:
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

    def tick(self, elapsed_ns: int, active: list[str], sample: Any) -> None:
        if not self._enabled:
            return
        # Fault changes get a line of their own: a 4-second restart falls between ticks.
        for name in active:
            if name not in self._active:
                self._write(f"[l2chaos] {_clock(elapsed_ns)} injected {name}")
        for name in self._active:
            if name not in active:
                self._write(f"[l2chaos] {_clock(elapsed_ns)} healed {name}")
        self._active = list(active)
        parts = [f"{_clock(elapsed_ns)}/{_clock(self._duration)}"]
        parts.append("faults: " + (", ".join(active) if active else "none"))
        if sample is not None:
            down = [s for s, ok in sample.health.items() if not ok]
            parts.append(f"block {sample.block_height if sample.block_height is not None else '?'}")
            parts.append("down: " + ", ".join(down) if down else "all healthy")
            if sample.order_ok is not None:
                parts.append("orders ok" if sample.order_ok else "orders failing")
        text = " | ".join(parts)
        if self._tty:
            self._out.write("\r\x1b[2K" + text[:200])
            self._out.flush()
            self._redraw = True
        elif time.monotonic() - self._last_plain >= 10:
            self._last_plain = time.monotonic()
            self._write(f"[l2chaos] {text}")

    def done(self) -> None:
        if self._redraw:
            self._out.write("\r\x1b[2K")
            self._out.flush()
            self._redraw = False
