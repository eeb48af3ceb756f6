"""`evm`: Ethereum JSON-RPC load (go-ethereum, op-geth, any EVM node).

Personas:

- `sender`: signs transactions locally (eth-account) and submits them with
  `eth_sendRawTransaction`, then polls `eth_getTransactionReceipt` until a receipt
  names its block. Two writes: `transfer` (value to another user) and `contract_call`
  (stores a number in a small storage contract deployed at set-up). `ok`: a receipt
  with status 1 (`result`: `tx_hash`, `block`, `block_hash`); `fail`: the node refused
  the transaction (a JSON-RPC error) or its receipt says reverted; `info`: the send or
  the receipt wait timed out or broke (the transaction may still be mined: its
  `tx_hash` is kept).
- `reader`: `eth_blockNumber`, `eth_getBlockByNumber` (`blocks_back` behind the head),
  `eth_getBalance` and `eth_call` of its own account, `eth_getTransactionReceipt` of
  transactions it saw in blocks.

Accounts (`prepare`, in the harness before Locust starts): one key per user, derived
from the scenario seed (or from the stack's `mnemonic`), funded according to the
stack's `funding` option: `dev` (the node's unlocked developer account, `eth_accounts`,
sends `fund_eth` to each with `eth_sendTransaction`: geth --dev), `key` (a funded
`funder_key` signs the transfers) or `none` (the keys are funded at genesis).
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from l2chaos.errors import LoadError
from l2chaos.jsonrpc import RpcCallError, RpcClient, quantity
from l2chaos.params import Param, Where

from ..history import Outcome
from ..personas import pick_item
from ._jsonrpc import BlockReader, JsonRpcDriver, Mix
from .base import Driver, DriverArgs, Prepared, SetupArgs, TraderProtocol
from .perpdex import check_mix, whole_range

if TYPE_CHECKING:
    from eth_account import Account as EthAccountType

__all__ = ["STORAGE_INIT", "EvmProtocol", "derive_keys"]

_MS = 1_000_000
_S = 1_000_000_000
_GWEI = 10**9
_ETH = 10**18

# A storage contract, hand-assembled: a call with 32 bytes of data stores them in the
# slot of the caller; a call without data returns the caller's slot.
#   CALLDATASIZE ISZERO PUSH1 0x0b JUMPI PUSH1 0 CALLDATALOAD CALLER SSTORE STOP
#   JUMPDEST CALLER SLOAD PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN
STORAGE_RUNTIME = "3615600b576000353355005b33546000526020" + "6000f3"
STORAGE_INIT = "0x6016600c60003960166000f3" + STORAGE_RUNTIME

SENDER_OPS = ("transfer", "contract_call")
READER_OPS = ("block_number", "get_block", "balance", "call", "get_receipt")


def _eth() -> type[EthAccountType]:
    """eth_account's Account, imported on first use. Its import (py_ecc) raises the
    interpreter's recursion limit to 100000, which turns a deep recursion anywhere in the
    process into a segfault instead of a RecursionError: the limit is put back."""
    limit = sys.getrecursionlimit()
    try:
        from eth_account import Account
    finally:
        sys.setrecursionlimit(limit)
    return Account


def derive_keys(seed: int, count: int, mnemonic: str = "") -> list[str]:
    """`count` private keys (hex): the mnemonic's m/44'/60'/0'/0/i, or sha256 of the seed
    and the index (stable, and never a key anyone funded on a public chain)."""
    if mnemonic:
        _eth().enable_unaudited_hdwallet_features()
        return [
            _eth().from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{i}").key.hex()
            for i in range(count)
        ]
    return [
        "0x" + hashlib.sha256(f"l2chaos-evm|{seed}|{i}".encode()).hexdigest() for i in range(count)
    ]


def _address(key: str) -> str:
    addr: str = _eth().from_key(key).address
    return addr


class _Setup:
    """The harness-side set-up: fund the users' keys, deploy the storage contract."""

    def __init__(self, setup: SetupArgs) -> None:
        self.opts = setup.options
        self.deadline = time.monotonic() + setup.timeout_s
        self.rpc = RpcClient(setup.endpoints["rpc"].rstrip("/") + "/", timeout_s=10.0)

    def run(self, keys: Sequence[str]) -> dict[str, Any]:
        try:
            chain_id = quantity(self.rpc.call("eth_chainId"))
            if chain_id is None:
                raise LoadError("eth_chainId did not answer a quantity")
            addresses = [_address(k) for k in keys]
            self._fund(addresses, chain_id)
            contract = self._deploy(keys[0], chain_id)
        except RpcCallError as exc:
            raise LoadError(f"the evm load's set-up failed: {exc}") from None
        finally:
            self.rpc.close()
        return {"chain_id": chain_id, "contract": contract, "addresses": addresses}

    def _fund(self, addresses: Sequence[str], chain_id: int) -> None:
        funding = self.opts["funding"]
        value = hex(int(float(self.opts["fund_eth"]) * _ETH))
        hashes: list[str] = []
        if funding == "dev":
            dev = self.rpc.call("eth_accounts")
            if not dev:
                raise LoadError(
                    "funding: dev, but the node has no unlocked developer account (eth_accounts "
                    "is empty); run it with --dev, or use funding: key or none"
                )
            for a in addresses:
                tx = {"from": dev[0], "to": a, "value": value, "gas": hex(21000)}
                hashes.append(str(self.rpc.call("eth_sendTransaction", [tx])))
        elif funding == "key":
            funder = str(self.opts["funder_key"])
            if not funder:
                raise LoadError("funding: key needs the stack's load.options.funder_key")
            nonce = self._nonce(_address(funder))
            for i, a in enumerate(addresses):
                tx = self._tx(chain_id, nonce + i, to=a, value=int(value, 16), gas=21000)
                hashes.append(self._send_signed(funder, tx))
        for h in hashes:
            self._receipt(h)

    def _deploy(self, key: str, chain_id: int) -> str:
        tx = self._tx(chain_id, self._nonce(_address(key)), to=None, gas=200_000)
        tx["data"] = STORAGE_INIT
        receipt = self._receipt(self._send_signed(key, tx))
        addr = receipt.get("contractAddress")
        if not isinstance(addr, str) or quantity(receipt.get("status")) != 1:
            raise LoadError(f"deploying the storage contract failed: receipt {receipt}")
        from eth_utils.address import to_checksum_address  # slow to import: only here

        return to_checksum_address(addr)

    def _nonce(self, address: str) -> int:
        n = quantity(self.rpc.call("eth_getTransactionCount", [address, "pending"]))
        if n is None:
            raise LoadError("eth_getTransactionCount did not answer a quantity")
        return n

    def _tx(
        self, chain_id: int, nonce: int, *, to: str | None, gas: int, value: int = 0
    ) -> dict[str, Any]:
        tx: dict[str, Any] = fee_fields(self.opts) | {
            "type": 2, "chainId": chain_id, "nonce": nonce, "value": value, "gas": gas,
        }  # fmt: skip
        if to is not None:
            tx["to"] = to
        return tx

    def _send_signed(self, key: str, tx: Mapping[str, Any]) -> str:
        signed = _eth().sign_transaction(dict(tx), key)
        raw = "0x" + signed.raw_transaction.hex()
        return str(self.rpc.call("eth_sendRawTransaction", [raw]))

    def _receipt(self, tx_hash: str) -> Mapping[str, Any]:
        while time.monotonic() < self.deadline:
            r = self.rpc.call("eth_getTransactionReceipt", [tx_hash])
            if isinstance(r, Mapping):
                return r
            time.sleep(0.1)
        raise LoadError(f"the evm load's set-up: no receipt for {tx_hash} within the start timeout")


def fee_fields(opts: Mapping[str, Any]) -> dict[str, int]:
    return {
        "maxFeePerGas": int(float(opts["max_fee_gwei"]) * _GWEI),
        "maxPriorityFeePerGas": int(float(opts["priority_fee_gwei"]) * _GWEI),
    }


def _receipt_result(tx_hash: str, r: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "tx_hash": tx_hash,
        "block": quantity(r.get("blockNumber")),
        "block_hash": r.get("blockHash"),
        "status": "success" if quantity(r.get("status")) == 1 else "reverted",
    }


class _Sender(JsonRpcDriver):
    """Signs and sends; waits for each receipt (one transaction in flight per user)."""

    def __init__(self, args: DriverArgs) -> None:
        super().__init__(args)
        self.mix = Mix(args)
        self.key = args.account.api_key
        self.address = args.account.address or _address(self.key)
        self.chain_id = int(args.data["chain_id"])
        self.contract = str(args.data["contract"])
        self.peers: list[str] = [a for a in args.data.get("addresses", []) if a != self.address]
        self.fees = fee_fields(args.data["fees"])
        self.nonce: int | None = None
        self.poll_s = int(self.settings["receipt_poll"]) / 1e9
        self.wait_s = int(self.settings["receipt_timeout"]) / 1e9
        self.value = int(self.settings["value_wei"])
        self.call_gas = int(self.settings["call_gas"])

    def start(self) -> None:
        pass

    def step(self) -> float:
        kind, pick, think = self.mix.next()
        self.step_no += 1
        if kind == "transfer":
            to = pick_item(self.peers, pick) or self.address
            self.send("transfer", {"to": to, "value": self.value, "gas": 21000})
        else:
            word = (self.step_no + 1).to_bytes(32, "big")
            data = "0x" + word.hex()
            fields = {"to": self.contract, "value": 0, "gas": self.call_gas, "data": data}
            self.send("contract_call", fields)
        return think

    def send(self, op: str, fields: Mapping[str, Any]) -> Outcome:
        """Sign, send and wait for the receipt of one transaction, recorded as `op`."""
        args = {"from": self.address, **fields}
        return self.op(op, args, lambda: self._send(fields))[0]

    def _send(self, fields: Mapping[str, Any]) -> tuple[Outcome, Mapping[str, Any] | None]:
        if self.nonce is None:
            r = self.request("eth_getTransactionCount", [self.address, "pending"])
            n = quantity(r.result) if r.outcome.type == "ok" else None
            if n is None:  # nothing was sent
                return Outcome("fail", f"could not read the nonce: {r.outcome.error}"), None
            self.nonce = n
        tx = {"type": 2, "chainId": self.chain_id, "nonce": self.nonce, **self.fees, **fields}
        signed = _eth().sign_transaction(tx, self.key)
        tx_hash = "0x" + signed.hash.hex().removeprefix("0x")
        started = time.monotonic()
        r = self.request("eth_sendRawTransaction", ["0x" + signed.raw_transaction.hex()])
        if r.outcome.type != "ok":
            self.nonce = None  # refused (nonce too low?) or unknown: ask the node again
            return r.outcome, {"tx_hash": tx_hash, "nonce": tx["nonce"]}
        self.nonce += 1
        outcome, result = self._wait_receipt(tx_hash, started)
        self._report(outcome, started)
        return outcome, result

    def _wait_receipt(self, tx_hash: str, started: float) -> tuple[Outcome, dict[str, Any]]:
        deadline = started + self.wait_s
        last_error = "no receipt yet"
        while True:
            r = self.request("eth_getTransactionReceipt", [tx_hash])
            if r.outcome.type == "ok" and isinstance(r.result, Mapping):
                res = _receipt_result(tx_hash, r.result)
                if res["status"] == "reverted":
                    return Outcome("fail", "reverted"), res
                return Outcome("ok"), res
            if r.outcome.type != "ok":
                last_error = r.outcome.error or r.outcome.type
            # (while the load stops, Locust's stop_timeout bounds this wait: a receipt
            # still missing then makes the operation `info`, interrupted)
            if time.monotonic() >= deadline:
                self.nonce = None  # it may still be mined, or dropped: ask the node again
                return (
                    Outcome("info", f"sent, no receipt within {self.wait_s:g}s ({last_error})"),
                    {"tx_hash": tx_hash, "status": "pending"},
                )
            time.sleep(self.poll_s)

    def _report(self, outcome: Outcome, started: float) -> None:
        """The confirmation time in Locust's statistics (request type `tx`)."""
        fire = getattr(getattr(self.session, "request_event", None), "fire", None)
        if fire is None:
            return
        fire(
            request_type="tx",
            name="confirmed",
            response_time=(time.monotonic() - started) * 1000,
            response_length=0,
            exception=None if outcome.type == "ok" else RuntimeError(outcome.error),
            context={},
        )


class _Reader(BlockReader):
    def __init__(self, args: DriverArgs) -> None:
        super().__init__(args)
        self.address = args.account.address or _address(args.account.api_key)
        self.contract = str(args.data["contract"])

    def step(self) -> float:
        kind, pick, think = self.mix.next()
        self.step_no += 1
        lo, hi = self.settings["blocks_back"]
        back = int(lo) + int(pick * (int(hi) - int(lo) + 1))
        if kind == "block_number":
            r = self.read(
                "rpc_block_number", "eth_blockNumber", [], lambda v: {"block": quantity(v)}
            )
            self.head = quantity(r.result) if r.outcome.type == "ok" else self.head
        elif kind == "get_block":
            self._get_block(None if self.head is None else max(0, self.head - back))
        elif kind == "balance":
            self.read(
                "rpc_get_balance", "eth_getBalance", [self.address, "latest"],
                lambda v: {"balance": str(quantity(v))},
            )  # fmt: skip
        elif kind == "call":
            self.read(
                "rpc_call", "eth_call", [{"from": self.address, "to": self.contract}, "latest"],
                lambda v: {"value": quantity(v) if v != "0x" else None},
            )  # fmt: skip
        else:
            tx = self.recent_tx_hash(pick)
            if tx is not None:
                self.read(
                    "rpc_get_receipt", "eth_getTransactionReceipt", [tx],
                    lambda v: _receipt_result(tx, v) if isinstance(v, Mapping) else {"found": False},
                )  # fmt: skip
        return think

    def _get_block(self, number: int | None) -> None:
        tag = "latest" if number is None else hex(number)
        r = self.read("rpc_get_block", "eth_getBlockByNumber", [tag, False], _block_summary)
        self.note_block(r, "number", lambda h: h)  # hashes only (full=False)


def _block_summary(res: Any) -> dict[str, Any]:
    if not isinstance(res, Mapping):
        return {"found": False}
    txs = res.get("transactions")
    return {
        "block": quantity(res.get("number")),
        "hash": res.get("hash"),
        "tx_count": len(txs) if isinstance(txs, list) else None,
    }


class EvmProtocol(TraderProtocol):
    name = "evm"
    summary = (
        "Ethereum JSON-RPC: transfers and contract calls signed locally and sent with "
        "eth_sendRawTransaction (receipts polled); eth_* reads"
    )
    personas: ClassVar[Mapping[str, tuple[Param, ...]]] = MappingProxyType(
        {
            "sender": (
                Param("mix", "mapping", {"transfer": 1, "contract_call": 1}, "weights of the writes: " + ", ".join(SENDER_OPS)),
                Param("value_wei", "int", 1, "value of one transfer, in wei", min=0),
                Param(
                    "call_gas", "int", 300_000,
                    "gas limit of a contract call (geth 1.17 charges about 132k for its first store)",
                    min=21_000,
                ),
                Param("receipt_poll", "duration", 200 * _MS, "pause between receipt polls", min=1 * _MS),
                Param(
                    "receipt_timeout", "duration", 30 * _S,
                    "how long a sent transaction may wait for its receipt before it is info (unknown)",
                    min=1 * _MS,
                ),
                Param("think", "duration_range", [0, 500 * _MS], "pause between steps", min=0),
            ),
            "reader": (
                Param(
                    "mix", "mapping", {"block_number": 3, "get_block": 3, "balance": 2, "call": 2, "get_receipt": 2},
                    "weights of the reads: " + ", ".join(READER_OPS),
                ),
                Param("blocks_back", "range", [0, 20], "how far behind the head a block read goes", min=0, max=1_000_000),
                Param("think", "duration_range", [200 * _MS, 1000 * _MS], "pause between steps", min=0),
            ),
        }
    )  # fmt: skip
    default_weights: ClassVar[Mapping[str, float]] = MappingProxyType({"sender": 3, "reader": 2})
    options = (
        Param(
            "funding", "enum", "dev",
            "how the users' keys get funds: dev (the node's unlocked eth_accounts[0] sends "
            "them), key (funder_key signs the transfers), none (funded at genesis)",
            choices=("dev", "key", "none"),
        ),
        Param("funder_key", "str", "", "a funded private key (hex), for funding: key"),
        Param("mnemonic", "str", "", "derive the users' keys from this mnemonic (else from the scenario seed)"),
        Param("fund_eth", "float", 100.0, "ETH sent to each user's key at set-up", min=0),
        Param("max_fee_gwei", "float", 100.0, "maxFeePerGas of every transaction, in gwei", min=0),
        Param("priority_fee_gwei", "float", 1.0, "maxPriorityFeePerGas, in gwei", min=0),
    )  # fmt: skip
    write_ops = frozenset(SENDER_OPS)
    own_accounts = True

    def check_persona(
        self, persona: str, settings: dict[str, Any], given: Any, where: Where
    ) -> None:
        ops = SENDER_OPS if persona == "sender" else READER_OPS
        settings["mix"] = check_mix(settings["mix"], ops, given, where)
        if persona == "reader":
            settings["blocks_back"] = whole_range(settings, "blocks_back", given, where)

    def endpoints_needed(self, counts: Mapping[str, int]) -> set[str]:
        return {"rpc"} if sum(counts.values()) > 0 else set()

    def prepare(self, setup: SetupArgs) -> Prepared:
        opts = {p.name: p.default for p in self.options} | dict(setup.options)
        keys = derive_keys(setup.seed, max(1, setup.users), str(opts["mnemonic"]))
        data = _Setup(replace(setup, options=opts)).run(keys)
        data["fees"] = {k: opts[k] for k in ("max_fee_gwei", "priority_fee_gwei")}
        accounts = [
            {"account": i + 1, "api_key": k, "role": "trader", "address": data["addresses"][i]}
            for i, k in enumerate(keys)
        ]
        return Prepared(accounts=accounts, data=data)

    def driver(self, args: DriverArgs) -> Driver:
        return _Sender(args) if args.persona == "sender" else _Reader(args)
