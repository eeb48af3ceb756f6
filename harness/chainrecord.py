"""The built-in chain record of a JSON-RPC node: what the chain looked like, read through
the node's own RPC, so checkers need no exporter.

A stack that declares ``probes: {chain: {service: geth, api: evm}}`` (or
``api: starknet``) gets, in the run directory (formats in docs/architecture.md,
"chain/"):

- ``chain/heads.jsonl``: every new head the probes saw (number, hash, parent hash);
- ``chain/reorgs.jsonl``: every time the head stepped back or a block the probes had
  seen changed its hash, with the depth (blocks of the old chain orphaned);
- ``chain/blocks.jsonl``: at wind-down, the canonical chain from the first head seen to
  the final head (number, hash, parent hash, transaction hashes), scanned block by
  block.

`fetch_block` reads one block: evm `eth_getBlockByNumber(n, false)`; starknet
`starknet_getBlockWithTxHashes` (`starknet_getBlockWithTxs` on a node without it).
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .jsonrpc import RpcCallError, RpcClient, quantity

__all__ = ["BLOCKS", "HEADS", "REORGS", "Block", "ChainRecorder", "fetch_block"]

HEADS = "chain/heads.jsonl"
REORGS = "chain/reorgs.jsonl"
BLOCKS = "chain/blocks.jsonl"
_SEEN_MAX = 100_000  # block hashes remembered for reorg detection
MAX_SCAN_BLOCKS = 200_000


@dataclass(frozen=True)
class Block:
    number: int
    hash: str
    parent_hash: str
    tx_hashes: tuple[str, ...] = field(default=())

    def to_json(self, *, txs: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "number": self.number,
            "hash": self.hash,
            "parent_hash": self.parent_hash,
        }
        if txs:
            out["tx_hashes"] = list(self.tx_hashes)
        return out


def _tx_hash(tx: Any) -> str | None:
    if isinstance(tx, str):
        return tx
    if isinstance(tx, dict):
        h = tx.get("transaction_hash") or tx.get("hash")
        return h if isinstance(h, str) else None
    return None


def _block(res: Any, number_key: str, hash_key: str, parent_key: str) -> Block | None:
    if not isinstance(res, dict):
        return None
    n = quantity(res.get(number_key))
    h, p = res.get(hash_key), res.get(parent_key)
    if n is None or not isinstance(h, str) or not isinstance(p, str):
        return None
    txs = tuple(t for t in (_tx_hash(x) for x in res.get("transactions") or ()) if t)
    return Block(n, h, p, txs)


def fetch_block(rpc: RpcClient, api: str, number: int | None) -> Block | None:
    """Block `number` (None: the head) as the node sees it now; None if it has none.
    Raises RpcCallError when the node does not answer."""
    if api == "evm":
        res = rpc.call("eth_getBlockByNumber", ["latest" if number is None else hex(number), False])
        return _block(res, "number", "hash", "parentHash")
    block_id: Any = "latest" if number is None else {"block_number": number}
    try:
        res = rpc.call("starknet_getBlockWithTxHashes", {"block_id": block_id})
    except RpcCallError as exc:
        if exc.code != -32601:
            raise
        res = rpc.call("starknet_getBlockWithTxs", {"block_id": block_id})
    return _block(res, "block_number", "block_hash", "parent_hash")


class ChainRecorder:
    """Keeps the chain record of one run. `observe` is called with each head the probes
    saw (thread-safe); `scan` reads the final canonical chain at wind-down."""

    def __init__(self, rpc: RpcClient, api: str, run_dir: Path) -> None:
        self.rpc = rpc
        self.api = api
        self.dir = run_dir
        (run_dir / "chain").mkdir(parents=True, exist_ok=True)
        self._heads: IO[str] = open(run_dir / HEADS, "a", encoding="utf-8")  # noqa: SIM115
        self._reorgs: IO[str] = open(run_dir / REORGS, "a", encoding="utf-8")  # noqa: SIM115
        self._lock = threading.Lock()
        self._seen: dict[int, str] = {}
        self.last: Block | None = None
        self.first_number: int | None = None
        self.reorgs = 0

    def head(self) -> Block | None:
        """The node's head now (None when it does not answer)."""
        try:
            return fetch_block(self.rpc, self.api, None)
        except RpcCallError:
            return None

    def observe(self, t_ns: int, head: Block) -> None:
        with self._lock:
            last = self.last
            if last is not None and head.hash == last.hash:
                return
            self._write(self._heads, {"t_ns": t_ns, **head.to_json(txs=False)})
            if self.first_number is None:
                self.first_number = head.number
            if last is not None:
                self._check_reorg(t_ns, last, head)
            self._remember(head)
            self.last = head

    def _check_reorg(self, t_ns: int, last: Block, head: Block) -> None:
        seen_here = self._seen.get(head.number)
        seen_parent = self._seen.get(head.number - 1)
        stepped_back = head.number <= last.number
        rewritten = seen_parent is not None and seen_parent != head.parent_hash
        if not stepped_back and not rewritten:
            return
        if seen_here == head.hash:
            ancestor: int | None = head.number
        elif seen_parent == head.parent_hash:
            ancestor = head.number - 1
        else:
            ancestor = None  # deeper than the two blocks the new head names
        # the highest block both chains may share: its parent, unless that was seen differ
        at_most = (
            ancestor if ancestor is not None else head.number - (1 if seen_parent is None else 2)
        )
        self.reorgs += 1
        self._write(
            self._reorgs,
            {
                "t_ns": t_ns,
                "from_number": last.number,
                "from_hash": last.hash,
                "to_number": head.number,
                "to_hash": head.hash,
                "common_ancestor": ancestor,
                "ancestor_at_most": at_most,
                "depth": max(last.number - at_most, 0),
            },
        )
        for n in [k for k in self._seen if k > head.number]:
            del self._seen[n]

    def _remember(self, head: Block) -> None:
        self._seen[head.number] = head.hash
        self._seen[head.number - 1] = head.parent_hash
        if len(self._seen) > _SEEN_MAX:
            for n in sorted(self._seen)[: len(self._seen) - _SEEN_MAX]:
                del self._seen[n]

    def _write(self, fh: IO[str], rec: dict[str, Any]) -> None:
        fh.write(json.dumps(rec, separators=(",", ":")) + "\n")
        fh.flush()

    def scan(self, *, timeout_s: float = 120.0) -> int:
        """Write chain/blocks.jsonl: every block of the node's canonical chain from the
        parent of the first head the probes saw (genesis when none; the block before the
        head when the head is lower) to its head now (at most MAX_SCAN_BLOCKS). Returns the
        number of blocks; raises RpcCallError when the node does not answer."""
        deadline = time.monotonic() + timeout_s
        head = fetch_block(self.rpc, self.api, None)
        if head is None:
            raise RpcCallError("the node has no head block")
        first = min((self.first_number or 1) - 1, head.number - 1)  # at least two blocks
        start = max(0, head.number - MAX_SCAN_BLOCKS + 1, first)
        numbers = range(start, head.number + 1)
        tmp = self.dir / (BLOCKS + ".tmp")
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="chain-scan") as pool:
            blocks = pool.map(lambda n: self._fetch_until(n, deadline), numbers)
            with open(tmp, "w", encoding="utf-8") as fh:
                count = 0
                for b in blocks:
                    fh.write(json.dumps(b.to_json(), separators=(",", ":")) + "\n")
                    count += 1
        tmp.replace(self.dir / BLOCKS)
        return count

    def _fetch_until(self, number: int, deadline: float) -> Block:
        while True:
            try:
                b = fetch_block(self.rpc, self.api, number)
                if b is not None:
                    return b
                problem = f"the node has no block {number}"
            except RpcCallError as exc:
                problem = str(exc)
            if time.monotonic() > deadline:
                raise RpcCallError(f"scanning the chain: {problem}")
            time.sleep(0.2)

    def close(self) -> None:
        with self._lock:
            self._heads.close()
            self._reorgs.close()
