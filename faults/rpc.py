"""JSON-RPC faults on a ``layer: http`` link, through the L7 proxy: one method fails
while the others work, matching calls are slow, the answer to a write never comes back,
a lagging replica serves an old head, an answer carries a wrong field.

Every fault takes `methods` (shell globs; a batch is handled call by call) and
`probability` (drawn from the scenario seed in call order). Bodies that are not
JSON-RPC pass through untouched. See docs/l7.md.
"""

from __future__ import annotations

from l2chaos.l7proxy.rules import HEAD_METHODS, Action, Error, StaleHead
from l2chaos.params import Param

from ._message import (
    DELAY_PARAMS,
    DROP_MODE,
    PROBABILITY,
    WHEN,
    MessageFault,
    corrupt_action,
    corrupt_params,
    delay_action,
    drop_action,
    methods_param,
)

__all__ = ["RpcCorrupt", "RpcDelay", "RpcDropResponse", "RpcError", "RpcStaleHead"]


class _RpcFault(MessageFault):
    family_name = "rpc"


class RpcError(_RpcFault):
    name = "rpc.error"
    summary = (
        "Answers matching JSON-RPC calls with an error (code, message): before forwarding "
        "(the call never reaches the node) or after (it did, the client cannot know)."
    )
    params = (
        methods_param(),
        Param("code", "int", default=-32603, help="JSON-RPC error code"),
        Param("message", "str", default="internal error", help="error message"),
        WHEN,
        PROBABILITY,
    )

    def action(self) -> Action:
        return Error(code=int(self.p["code"]), message=str(self.p["message"]), when=self.p["when"])


class RpcDelay(_RpcFault):
    name = "rpc.delay"
    summary = "Delays matching JSON-RPC calls only (latency ± jitter), before or after forwarding."
    params = (methods_param(), *DELAY_PARAMS, PROBABILITY)

    def action(self) -> Action:
        return delay_action(self.p)


class RpcDropResponse(_RpcFault):
    name = "rpc.drop_response"
    summary = (
        "Forwards matching calls, then drops or cuts the answer: the write may have "
        "happened, so a client must record an unknown outcome (info)."
    )
    params = (methods_param(), DROP_MODE, PROBABILITY)

    def action(self) -> Action:
        return drop_action(self.p)


class RpcStaleHead(_RpcFault):
    name = "rpc.stale_head"
    summary = (
        "Answers head queries (eth_blockNumber, starknet_blockNumber, latest blocks) from "
        "the head seen at injection, as a lagging replica behind a load balancer does."
    )
    params = (
        methods_param(HEAD_METHODS),
        Param(
            "flavor",
            "enum",
            default="auto",
            choices=("auto", "evm", "starknet"),
            help="how heads are written (evm: hex quantities; starknet: numbers, block_id); auto asks the node",
        ),
        Param(
            "path", "str", default="/", help="where the node answers JSON-RPC (for the snapshot)"
        ),
        PROBABILITY,
    )

    def action(self) -> Action:
        return StaleHead(flavor=self.p["flavor"], path=self.p["path"])


class RpcCorrupt(_RpcFault):
    name = "rpc.corrupt"
    summary = (
        "Rewrites fields of matching JSON-RPC answers (or requests) through JSON paths "
        "relative to the call's object: a price to 0, a hash, a status."
    )
    params = (methods_param(), *corrupt_params('"result.status"'), PROBABILITY)

    def action(self) -> Action:
        return corrupt_action(self.p)
