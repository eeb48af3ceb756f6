"""probes.jsonl: one line per probe sample (docs/architecture.md, "probes.jsonl").

The probe loop writes `Sample`s; the checkers and the report read them back with
`Sample.from_json` (`RunRecord.probes()`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from l2chaos.chainrecord import Block

__all__ = ["Sample"]


def _flags(v: Any) -> dict[str, bool]:
    return {str(k): bool(x) for k, x in v.items()} if isinstance(v, Mapping) else {}


def _head(v: Any) -> Block | None:
    if not isinstance(v, Mapping):
        return None
    number, hash_, parent = v.get("number"), v.get("hash"), v.get("parent_hash")
    if isinstance(number, int) and isinstance(hash_, str) and isinstance(parent, str):
        return Block(number, hash_, parent)
    return None


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

    def to_json(self) -> dict[str, Any]:
        out = {
            "t_ns": self.t_ns,
            "mono_ns": self.mono_ns,
            "health": self.health,
            "ready": self.ready,
            "block_height": self.block_height,
            "order_ok": self.order_ok,
            "order_ms": self.order_ms,
            "order_error": self.order_error,
        }
        if self.head is not None:
            out["head"] = self.head.to_json(txs=False)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Sample | None:
        """The sample of one line; None for a line without its time (it cannot be placed)."""
        t, mono, height = data.get("t_ns"), data.get("mono_ns"), data.get("block_height")
        if not isinstance(t, int):
            return None
        ok, ms, err = data.get("order_ok"), data.get("order_ms"), data.get("order_error")
        return cls(
            t_ns=t,
            mono_ns=mono if isinstance(mono, int) else 0,
            health=_flags(data.get("health")),
            ready=_flags(data.get("ready")),
            block_height=height
            if isinstance(height, int) and not isinstance(height, bool)
            else None,
            order_ok=None if ok is None else ok is True,
            order_ms=float(ms) if isinstance(ms, (int, float)) else None,
            order_error=None if err is None else str(err),
            head=_head(data.get("head")),
        )
