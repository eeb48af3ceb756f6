"""Sequencer faults through its hooks: trading mode changes, a halt, clock skew."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from l2chaos.params import Param

from ._hooked import HookedFault
from .base import TargetKind, Window

MODES = ("normal", "cancel_only", "post_only", "halted")


class SequencerMode(HookedFault):
    name = "sequencer.mode"
    summary = (
        "Sets the exchange's trading mode (an operator's staged reopen: cancel_only, post_only); "
        "with `for` it returns to normal after it, without it the mode stays."
    )
    hook = "trading_mode"
    resource = "trading-mode"
    target_kind = TargetKind.NONE
    window = Window.OPTIONAL
    needs_hooks = ("trading_mode",)
    params = (Param("mode", "enum", choices=MODES, help="the trading mode to set"),)

    def inject_body(self) -> Mapping[str, Any]:
        return {"mode": self.p["mode"]}

    def heal_body(self) -> Mapping[str, Any] | None:
        return None if self.duration_ns is None else {"mode": "normal"}


class SequencerHalt(HookedFault):
    name = "sequencer.halt"
    summary = "Halts trading (no orders, no matching) for the window, then resumes normal mode."
    hook = "trading_mode"
    resource = "trading-mode"
    target_kind = TargetKind.NONE
    window = Window.REQUIRED
    needs_hooks = ("trading_mode",)

    def inject_body(self) -> Mapping[str, Any]:
        return {"mode": "halted"}

    def heal_body(self) -> Mapping[str, Any]:
        return {"mode": "normal"}


class ClockSkew(HookedFault):
    name = "clock.skew"
    summary = "Skews the sequencer's chain clock ahead or behind by `offset` for the window."
    hook = "clock_offset"
    resource = "chain-clock"
    target_kind = TargetKind.NONE
    window = Window.REQUIRED
    needs_hooks = ("clock_offset",)
    params = (
        Param(
            "offset",
            "duration",
            default=30_000_000_000,
            max=24 * 3_600_000_000_000,
            help="how far the clock is moved (at most 24h: the chain must come back from it)",
        ),
        Param("direction", "enum", default="ahead", choices=("ahead", "behind"), help="which way"),
    )

    def _offset_ms(self) -> int:
        ms = int(self.p["offset"]) // 1_000_000
        return ms if self.p["direction"] == "ahead" else -ms

    def inject_body(self) -> Mapping[str, Any]:
        return {"offset_ms": self._offset_ms()}

    def heal_body(self) -> Mapping[str, Any]:
        return {"offset_ms": 0}
