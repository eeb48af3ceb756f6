"""probes.jsonl: one line per probe sample (docs/architecture.md, "probes.jsonl").

The probe loop writes `Sample`s; the checkers and the report read each line back as a
`ProbeLine` (msgspec, straight from the line) and take its `Sample`
(`RunRecord.samples()`).
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
from l2chaos.chainrecord import Block

from .json_types import JsonObject, fields_json

__all__ = ["PROBES", "ProbeLine", "Sample"]

PROBES = "probes.jsonl"


@dataclass
class Sample:
    """Health and readiness per service, the block height, one order's round trip."""

    t_ns: int
    mono_ns: int
    health: dict[str, bool]
    ready: dict[str, bool]
    block_height: int | None
    order_ok: bool | None
    order_ms: float | None
    order_error: str | None
    head: Block | None = None

    @property
    def healthy(self) -> bool:
        """Every service healthy and ready."""
        return all(self.health.values()) and all(self.ready.values())

    def to_json(self) -> JsonObject:
        out = fields_json(self, ("head",))
        if self.head is not None:
            out["head"] = self.head.to_json(txs=False)
        return out


class ProbeLine(msgspec.Struct, gc=False):
    """A line of probes.jsonl as read back; `sample()` is the Sample it holds."""

    t_ns: int | None = None
    mono_ns: int | None = None
    health: dict[str, bool] = msgspec.field(default_factory=dict)
    ready: dict[str, bool] = msgspec.field(default_factory=dict)
    block_height: int | None = None
    order_ok: bool | None = None
    order_ms: float | None = None
    order_error: str | None = None
    head: Block | None = None

    def sample(self) -> Sample | None:
        """None for a line without its time (it cannot be placed)."""
        if self.t_ns is None:
            return None
        return Sample(
            self.t_ns, self.mono_ns or 0, self.health, self.ready, self.block_height,
            self.order_ok, self.order_ms, self.order_error, self.head,
        )  # fmt: skip
