"""Sequencer faults through its hooks: trading mode changes, a halt, clock skew."""

from __future__ import annotations

from abc import abstractmethod
from typing import Literal, TypeVar

from l2chaos.params import Duration, NoParams, param, params, required

from ._hooked import Body, HookedFault
from .base import Window

HP = TypeVar("HP")


@params
class ModeParams:
    mode: Literal["normal", "cancel_only", "post_only", "halted"] = required(
        "the trading mode to set"
    )


class _TradingModeFault(HookedFault[HP]):
    """Sets the exchange's trading mode through its `trading_mode` hook and returns it to
    normal at heal."""

    hook = "trading_mode"
    resource = "trading-mode"

    @abstractmethod
    def mode(self) -> str:
        """The mode set at inject."""

    def inject_body(self) -> Body:
        return {"mode": self.mode()}

    def heal_body(self) -> Body | None:
        return {"mode": "normal"}


class SequencerMode(_TradingModeFault[ModeParams]):
    name = "sequencer.mode"
    summary = (
        "Sets the exchange's trading mode (an operator's staged reopen: cancel_only, post_only); "
        "with `for` it returns to normal after it, without it the mode stays."
    )
    window = Window.OPTIONAL

    def mode(self) -> str:
        return self.p.mode

    def heal_body(self) -> Body | None:
        return None if self.duration is None else super().heal_body()


class SequencerHalt(_TradingModeFault[NoParams]):
    name = "sequencer.halt"
    summary = "Halts trading (no orders, no matching) for the window, then resumes normal mode."

    def mode(self) -> str:
        return "halted"


@params
class SkewParams:
    offset: Duration = param(
        Duration.of(s=30),
        "how far the clock is moved (at most 24h: the chain must come back from it)",
        max=Duration.of(h=24),
    )
    direction: Literal["ahead", "behind"] = param("ahead", "which way")


class ClockSkew(HookedFault[SkewParams]):
    name = "clock.skew"
    summary = "Skews the sequencer's chain clock ahead or behind by `offset` for the window."
    hook = "clock_offset"
    resource = "chain-clock"

    def _offset_ms(self) -> int:
        ms = self.p.offset.ns // 1_000_000
        return ms if self.p.direction == "ahead" else -ms

    def inject_body(self) -> Body:
        return {"offset_ms": self._offset_ms()}

    def heal_body(self) -> Body:
        return {"offset_ms": 0}
