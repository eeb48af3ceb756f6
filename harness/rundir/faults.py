"""faults.jsonl: one line per action of a timeline entry (docs/architecture.md,
"faults.jsonl"). The timeline writes `FaultAction`s; the lifecycle events hand the
same objects to listeners. The checkers read each line back as a `FaultLine`
(`RunRecord.faults()` folds them per fault).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from .json_types import JsonObject, fields_json

__all__ = ["FAULTS", "FaultAction", "FaultLine"]

FAULTS = "faults.jsonl"


@dataclass(frozen=True)
class FaultAction:
    """An inject, heal, note (a step inside a fault) or missed (its trigger never fired)."""

    fault_id: int
    label: str
    name: str
    target: str
    action: str
    params: Any
    scheduled_ns: int | None  # offset from time zero at which it was due
    t_ns: int  # when it started, host UTC
    mono_ns: int
    done_mono_ns: int
    lateness_ms: float | None
    took_ms: float
    block: int | None  # the chain height when it happened
    ok: bool
    error: str | None
    details: Any
    # inject and missed: the entry's trigger; inject: when it fired
    trigger: JsonObject | None = None
    trigger_text: str | None = None
    target_block: int | None = None
    lateness_blocks: int | None = None
    fired_by: JsonObject | None = None
    waited_for: list[str] | None = None

    def to_json(self) -> JsonObject:
        """Every field but the trigger's (written when there is one) and the firing's
        (written for an inject)."""
        out = fields_json(self, _TRIGGER + _FIRING)
        if self.trigger is not None:
            out.update((k, getattr(self, k)) for k in _TRIGGER)
        if self.action == "inject":
            out.update((k, getattr(self, k)) for k in _FIRING)
        return out


_TRIGGER = ("trigger", "trigger_text")
_FIRING = ("target_block", "lateness_blocks", "fired_by", "waited_for")


class FaultLine(msgspec.Struct, gc=False):
    """A line of the fault log as the checkers read it (the fields of `FaultAction`
    they use; `params`, `details` and a trigger's fields are each fault's own)."""

    fault_id: int = -1
    label: str | None = None
    name: str = ""
    target: str = ""
    action: str | None = None
    params: dict[str, object] | None = None
    scheduled_ns: int | None = None
    t_ns: int | None = None
    lateness_ms: float | None = None
    took_ms: float | None = None
    block: int | None = None
    ok: bool = True
    error: str | None = None
    details: object = None
    trigger: dict[str, object] | None = None
    trigger_text: str | None = None
    target_block: int | None = None
    lateness_blocks: int | None = None

    @property
    def done_t_ns(self) -> int | None:
        """When the action ended (host UTC ns): its start plus what it took."""
        t = self.t_ns
        return None if t is None else t + round((self.took_ms or 0.0) * 1e6)
