"""Chain faults: an operator's rollback to an earlier block (a declared rollback: the
fault log and the stack's rollback event both record it, so checkers can tell lost
writes from rolled-back ones)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from l2chaos.params import Param

from ._hooked import HookedFault
from .base import TargetKind, Window


class ChainRollback(HookedFault):
    name = "chain.rollback"
    summary = (
        "Rolls the chain back to an earlier block, `blocks_back` behind the head "
        "(or to `to_block`): state returns to that block's snapshot."
    )
    hook = "rollback"
    resource = "chain-head"
    target_kind = TargetKind.NONE
    window = Window.INSTANT
    needs_hooks = ("rollback",)
    params = (
        Param(
            "blocks_back", "int", default=20, min=1, help="how many blocks behind the head to go"
        ),
        Param(
            "to_block",
            "int",
            default=-1,
            min=-1,
            help="an absolute block number instead (-1: unused)",
        ),
    )

    def inject_body(self) -> Mapping[str, Any]:
        if self.p["to_block"] >= 0:
            return {"to_block": self.p["to_block"]}
        return {"blocks_back": self.p["blocks_back"]}

    def inject(self, ctx: Any) -> dict[str, Any]:
        details = super().inject(ctx)
        answer = details.get("answer")
        if isinstance(answer, dict):  # the declared target, for the durability checker
            details["declared"] = {k: answer[k] for k in ("from_block", "to_block") if k in answer}
        return details
