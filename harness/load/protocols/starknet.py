"""`starknet`: Starknet JSON-RPC reads (`starknet_*`) against a node's rpc endpoint.

One persona, `reader`, mixing `starknet_blockNumber`, `starknet_getBlockWithTxHashes`
(`blocks_back` behind the head it last saw), `starknet_getStateUpdate`,
`starknet_getTransactionReceipt` of transactions it saw in blocks, and
`starknet_chainId`. A node without `starknet_getBlockWithTxHashes` (it answers
-32601, recorded as `fail`) is asked `starknet_getBlockWithTxs` from then on. No
accounts and no writes: readers need no keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from l2chaos.params import Param, Where

from ._jsonrpc import BlockReader, quantity
from .base import Driver, DriverArgs, Prepared, SetupArgs, TraderProtocol
from .perpdex import check_mix, whole_range

__all__ = ["StarknetProtocol"]

_MS = 1_000_000
READS = ("block_number", "get_block", "get_state_update", "get_receipt", "chain_id")


def _block_id(number: int | None) -> Any:
    return "latest" if number is None else {"block_number": number}


def _block_summary(res: Any) -> dict[str, Any]:
    if not isinstance(res, Mapping):
        return {}
    txs = res.get("transactions")
    return {
        "block": res.get("block_number"),
        "hash": res.get("block_hash"),
        "tx_count": len(txs) if isinstance(txs, list) else None,
    }


class _Reader(BlockReader):
    def __init__(self, args: DriverArgs) -> None:
        super().__init__(args)
        self.block_method = "starknet_getBlockWithTxHashes"

    def step(self) -> float:
        kind, pick, think = self.mix.next()
        self.step_no += 1
        back = int(self.settings["blocks_back"][0]) + int(
            pick * (self.settings["blocks_back"][1] - self.settings["blocks_back"][0] + 1)
        )
        if kind == "block_number":
            r = self.read("rpc_block_number", "starknet_blockNumber", [], lambda v: {"block": v})
            self.head = quantity(r.result) if r.outcome.type == "ok" else self.head
        elif kind == "get_block":
            number = None if self.head is None else max(0, self.head - back)
            self._get_block(number)
        elif kind == "get_state_update":
            number = None if self.head is None else max(0, self.head - back)
            self.read(
                "rpc_get_state_update",
                "starknet_getStateUpdate",
                {"block_id": _block_id(number)},
                lambda v: {"block_hash": v.get("block_hash")} if isinstance(v, Mapping) else {},
            )
        elif kind == "get_receipt":
            tx = self.recent_tx_hash(pick)
            if tx is not None:
                self.read(
                    "rpc_get_receipt",
                    "starknet_getTransactionReceipt",
                    {"transaction_hash": tx},
                    _receipt_summary,
                )
        else:
            self.read("rpc_chain_id", "starknet_chainId", [], lambda v: {"chain_id": v})
        return think

    def _get_block(self, number: int | None) -> None:
        r = self.read(
            "rpc_get_block", self.block_method, {"block_id": _block_id(number)}, _block_summary
        )
        err = r.body.get("error") if isinstance(r.body, Mapping) else None
        if isinstance(err, Mapping) and err.get("code") == -32601:
            self.block_method = "starknet_getBlockWithTxs"
        self.note_block(r, "block_number", _tx_hash)


def _tx_hash(tx: Any) -> Any:
    """A block's transaction: its hash (WithTxHashes) or an object carrying it (WithTxs)."""
    return tx.get("transaction_hash") if isinstance(tx, Mapping) else tx


def _receipt_summary(res: Any) -> dict[str, Any]:
    if not isinstance(res, Mapping):
        return {}
    keys = ("transaction_hash", "execution_status", "finality_status", "block_number", "status")
    return {k: res[k] for k in keys if k in res}


class StarknetProtocol(TraderProtocol):
    name = "starknet"
    summary = "Starknet JSON-RPC reads (starknet_blockNumber, starknet_getBlockWithTxHashes, ...)"
    personas: ClassVar[Mapping[str, tuple[Param, ...]]] = MappingProxyType(
        {
            "reader": (
                Param(
                    "mix", "mapping",
                    {"block_number": 3, "get_block": 3, "get_state_update": 1, "get_receipt": 2, "chain_id": 1},
                    "weights of the reads: " + ", ".join(READS),
                ),
                Param("blocks_back", "range", [0, 20], "how far behind the head a block read goes", min=0, max=1_000_000),
                Param("think", "duration_range", [200 * _MS, 1000 * _MS], "pause between steps", min=0),
            ),
        }
    )  # fmt: skip
    default_weights: ClassVar[Mapping[str, float]] = MappingProxyType({"reader": 1})
    own_accounts = True

    def check_persona(
        self, persona: str, settings: dict[str, Any], given: Any, where: Where
    ) -> None:
        settings["mix"] = check_mix(settings["mix"], READS, given, where)
        settings["blocks_back"] = whole_range(settings, "blocks_back", given, where)

    def endpoints_needed(self, counts: Mapping[str, int]) -> set[str]:
        return {"rpc"} if sum(counts.values()) > 0 else set()

    def prepare(self, setup: SetupArgs) -> Prepared:
        # readers need no keys: one placeholder account per user keeps users apart
        return Prepared(accounts=[{"account": i + 1, "api_key": "-"} for i in range(setup.users)])

    def driver(self, args: DriverArgs) -> Driver:
        return _Reader(args)
