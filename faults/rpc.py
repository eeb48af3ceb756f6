"""JSON-RPC faults on a ``layer: http`` link, through the L7 proxy: one method fails
while the others work, matching calls are slow, the answer to a write never comes back,
a lagging replica serves an old head, an answer carries a wrong field.

Every fault takes `methods` (shell globs; a batch is handled call by call) and
`probability` (drawn from the scenario seed in call order). Bodies that are not
JSON-RPC pass through untouched. See docs/l7.md.
"""

from __future__ import annotations

from typing import Literal, TypeVar

from l2chaos.l7proxy.rules import HEAD_METHODS, Action, Error, StaleHead
from l2chaos.params import param, params

from ._message import (
    WHEN_HELP,
    CorruptFields,
    DelayFields,
    DropFields,
    MessageFault,
    RpcMatch,
    When,
)

__all__ = ["RpcCorrupt", "RpcDelay", "RpcDropResponse", "RpcError", "RpcStaleHead"]

RP = TypeVar("RP", bound=RpcMatch)


class _RpcFault(MessageFault[RP]):
    family_name = "rpc"


@params
class RpcErrorParams(RpcMatch):
    code: int = param(-32603, "JSON-RPC error code")
    message: str = param("internal error", "error message")
    when: When = param("before", WHEN_HELP)


class RpcError(_RpcFault[RpcErrorParams]):
    name = "rpc.error"
    summary = (
        "Answers matching JSON-RPC calls with an error (code, message): before forwarding "
        "(the call never reaches the node) or after (it did, the client cannot know)."
    )

    def action(self) -> Action:
        return Error(code=self.p.code, message=self.p.message, when=self.p.when)


@params
class RpcDelayParams(DelayFields, RpcMatch):
    pass


class RpcDelay(_RpcFault[RpcDelayParams]):
    name = "rpc.delay"
    summary = "Delays matching JSON-RPC calls only (latency ± jitter), before or after forwarding."

    def action(self) -> Action:
        return self.p.delay()


@params
class RpcDropParams(DropFields, RpcMatch):
    pass


class RpcDropResponse(_RpcFault[RpcDropParams]):
    name = "rpc.drop_response"
    summary = (
        "Forwards matching calls, then drops or cuts the answer: the write may have "
        "happened, so a client must record an unknown outcome (info)."
    )

    def action(self) -> Action:
        return self.p.drop()


@params
class StaleHeadParams(RpcMatch):
    methods: tuple[str, ...] = param(
        HEAD_METHODS, "JSON-RPC methods hit, shell globs (eth_*); empty means every method"
    )
    flavor: Literal["auto", "evm", "starknet"] = param(
        "auto",
        "how heads are written (evm: hex quantities; starknet: numbers, block_id); auto asks the node",
    )
    path: str = param("/", "where the node answers JSON-RPC (for the snapshot)")


class RpcStaleHead(_RpcFault[StaleHeadParams]):
    name = "rpc.stale_head"
    summary = (
        "Answers head queries (eth_blockNumber, starknet_blockNumber, latest blocks) from "
        "the head seen at injection, as a lagging replica behind a load balancer does."
    )

    def action(self) -> Action:
        return StaleHead(flavor=self.p.flavor, path=self.p.path)


@params
class RpcCorruptParams(CorruptFields, RpcMatch):
    pass


class RpcCorrupt(_RpcFault[RpcCorruptParams]):
    name = "rpc.corrupt"
    summary = (
        "Rewrites fields of matching JSON-RPC answers (or requests) through JSON paths "
        "relative to the call's object: a price to 0, a hash, a status."
    )

    def action(self) -> Action:
        return self.p.corrupt()
