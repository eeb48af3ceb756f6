"""Chain faults: an operator's rollback to an earlier block (a declared rollback: the
fault log and the stack's rollback event both record it, so checkers can tell lost
writes from rolled-back ones)."""

from __future__ import annotations

from l2chaos.params import param, params

from ._hooked import Body, HookedFault
from .base import Details, FaultContext, Window


@params
class RollbackParams:
    blocks_back: int = param(20, "how many blocks behind the head to go", min=1)
    to_block: int | None = param(None, "an absolute block number instead of blocks_back", min=0)


class ChainRollback(HookedFault[RollbackParams]):
    name = "chain.rollback"
    summary = (
        "Rolls the chain back to an earlier block, `blocks_back` behind the head "
        "(or to `to_block`): state returns to that block's snapshot."
    )
    hook = "rollback"
    resource = "chain-head"
    window = Window.INSTANT

    def inject_body(self) -> Body:
        if self.p.to_block is not None:
            return {"to_block": self.p.to_block}
        return {"blocks_back": self.p.blocks_back}

    def inject(self, ctx: FaultContext) -> Details:
        details = super().inject(ctx)
        answer = details.get("answer")
        if isinstance(answer, dict):  # the declared target, for the durability checker
            details["declared"] = {k: answer[k] for k in ("from_block", "to_block") if k in answer}
        return details
