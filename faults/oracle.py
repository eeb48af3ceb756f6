"""Oracle faults, through the stack's `oracle_mode` hook: the published price stops,
reads zero, spikes, or lags the market while the oracle's model keeps running (the
reference log records both, so checkers can compare)."""

from __future__ import annotations

from typing import ClassVar, TypeVar

from l2chaos.params import Duration, param, params, required

from ._hooked import Body, HookedFault
from .base import TargetKind, Window


@params
class MarketsParams:
    markets: tuple[str, ...] = param((), "markets to affect, e.g. [BTC-USD-PERP]; empty means all")


OP = TypeVar("OP", bound=MarketsParams)


def _with_markets(p: MarketsParams, body: Body) -> Body:
    if p.markets:
        body["markets"] = list(p.markets)
    return body


class _OracleFault(HookedFault[OP]):
    hook = "oracle_mode"
    resource = "oracle-mode"
    mode: ClassVar[str]

    def extra(self) -> Body:
        return {}

    def inject_body(self) -> Body:
        return _with_markets(self.p, {"mode": self.mode, **self.extra()})

    def heal_body(self) -> Body:
        return _with_markets(self.p, {"mode": "normal"})


class OracleStale(_OracleFault[MarketsParams]):
    name = "oracle.stale"
    summary = "The oracle stops publishing; the last price goes stale while the market moves."
    mode = "stale"


class OracleZero(_OracleFault[MarketsParams]):
    name = "oracle.zero"
    summary = "The oracle publishes a price of zero."
    mode = "zero"


@params
class SpikeParams(MarketsParams):
    factor: float = param(1.5, "multiplier applied to the true price", min=0.0)


class OracleSpike(_OracleFault[SpikeParams]):
    name = "oracle.spike"
    summary = (
        "The oracle publishes the price multiplied by `factor` (a bad feed, an x1000 unit error)."
    )
    mode = "spike"

    def extra(self) -> Body:
        return {"factor": self.p.factor}


@params
class LagParams(MarketsParams):
    by: Duration = param(Duration.of(s=10), "how far behind the published price is")


class OracleLag(_OracleFault[LagParams]):
    name = "oracle.lag"
    summary = (
        "The oracle publishes the price from `by` ago with its old timestamp (a lagging feed)."
    )
    mode = "lag"

    def extra(self) -> Body:
        return {"lag_ms": self.p.by.ns // 1_000_000}


@params
class DriftParams(MarketsParams):
    pct: float = required("the move in percent, e.g. -15", min=-99.0, max=1000.0)


class OracleDrift(HookedFault[DriftParams]):
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

    def resources(self) -> set[str]:
        return set()  # moves compose (a crash and a rebound may overlap)

    def inject_body(self) -> Body:
        ms = self.duration.ns // 1_000_000 if self.duration is not None else 0
        return _with_markets(self.p, {"pct": self.p.pct, "duration_ms": ms})
