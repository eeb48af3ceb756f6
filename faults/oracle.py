"""Oracle faults, through the stack's `oracle_mode` hook: the published price stops,
reads zero, spikes, or lags the market while the oracle's model keeps running (the
reference log records both, so checkers can compare)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from l2chaos.params import Param

from ._hooked import HookedFault
from .base import TargetKind, Window

_MARKETS = Param(
    "markets",
    "str_list",
    default=[],
    help="markets to affect, e.g. [BTC-USD-PERP]; empty means all",
)


class _OracleFault(HookedFault):
    hook = "oracle_mode"
    resource = "oracle-mode"
    target_kind = TargetKind.NONE
    window = Window.REQUIRED
    needs_hooks = ("oracle_mode",)
    mode: ClassVar[str]

    def extra(self) -> dict[str, Any]:
        return {}

    def inject_body(self) -> Mapping[str, Any]:
        body: dict[str, Any] = {"mode": self.mode, **self.extra()}
        if self.p.get("markets"):
            body["markets"] = list(self.p["markets"])
        return body

    def heal_body(self) -> Mapping[str, Any]:
        body: dict[str, Any] = {"mode": "normal"}
        if self.p.get("markets"):
            body["markets"] = list(self.p["markets"])
        return body


class OracleStale(_OracleFault):
    name = "oracle.stale"
    summary = "The oracle stops publishing; the last price goes stale while the market moves."
    mode = "stale"
    params = (_MARKETS,)


class OracleZero(_OracleFault):
    name = "oracle.zero"
    summary = "The oracle publishes a price of zero."
    mode = "zero"
    params = (_MARKETS,)


class OracleSpike(_OracleFault):
    name = "oracle.spike"
    summary = (
        "The oracle publishes the price multiplied by `factor` (a bad feed, an x1000 unit error)."
    )
    mode = "spike"
    params = (
        _MARKETS,
        Param("factor", "float", default=1.5, min=0.0, help="multiplier applied to the true price"),
    )

    def extra(self) -> dict[str, Any]:
        return {"factor": self.p["factor"]}


class OracleLag(_OracleFault):
    name = "oracle.lag"
    summary = (
        "The oracle publishes the price from `by` ago with its old timestamp (a lagging feed)."
    )
    mode = "lag"
    params = (
        _MARKETS,
        Param(
            "by", "duration", default=10_000_000_000, help="how far behind the published price is"
        ),
    )

    def extra(self) -> dict[str, Any]:
        return {"lag_ms": self.p["by"] // 1_000_000}


class OracleDrift(HookedFault):
    name = "oracle.drift"
    summary = (
        "The market moves: the oracle's model price goes `pct` percent up or down, linearly "
        "over the window (a step without `for`), and stays there (a crash, a sustained "
        "trend). A genuine move, not a bad feed: the reference log records it as the truth."
    )
    hook = "oracle_drift"
    resource = "oracle-drift"
    target_kind = TargetKind.NONE
    window = Window.OPTIONAL
    needs_hooks = ("oracle_drift",)
    params = (
        _MARKETS,
        Param("pct", "float", min=-99.0, max=1000.0, help="the move in percent, e.g. -15"),
    )

    def resources(self) -> set[str]:
        return set()  # moves compose (a crash and a rebound may overlap)

    def inject_body(self) -> Mapping[str, Any]:
        body: dict[str, Any] = {
            "pct": self.p["pct"],
            "duration_ms": (self.duration_ns or 0) // 1_000_000,
        }
        if self.p.get("markets"):
            body["markets"] = list(self.p["markets"])
        return body
