"""The base of a JSON-RPC user (evm, starknet): `JsonRpcDriver` records each operation
as an invoke and one completion and retires its process id after an `info`; `Mix` makes
its seeded choices. Requests go through `l2chaos.load.rpc.post`.
"""

from __future__ import annotations

import random
from abc import abstractmethod
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from l2chaos.jsonrpc import quantity

from ..history import Outcome
from ..ops import Stopping
from ..personas import WeightedOps, pick_item, user_seed
from ..rpc import RpcReply, post
from .base import DriverArgs, RecordedUser

__all__ = ["BlockReader", "JsonRpcDriver", "Mix", "quantity"]


class JsonRpcDriver(RecordedUser):
    """Base of a JSON-RPC user: one account, a process id retired after `info`, and
    `op` to record one operation made of one or more requests."""

    def __init__(self, args: DriverArgs, role: str = "rpc") -> None:
        super().__init__(args)
        self.url = args.endpoints.get(role, "").rstrip("/") + "/"
        self._next_id = 0
        self.step_no = -1

    def request(self, method: str, params: Any, *, name: str | None = None) -> RpcReply:
        """One JSON-RPC call (not recorded in the history by itself)."""
        self._next_id += 1
        body = {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params}
        return post(self.session, self.url, name or method, body)

    def op(
        self,
        op: str,
        args: Mapping[str, Any],
        run: Callable[[], tuple[Outcome, Mapping[str, Any] | None]],
    ) -> tuple[Outcome, Mapping[str, Any] | None]:
        """Record one operation: an invoke, then what `run` returns (outcome, result).
        Raises `Stopping` instead of starting once the load is being stopped."""
        if self.args.stopping():
            raise Stopping()
        h = self.history.invoke(
            process=self.process,
            persona=self.persona,
            account=self.account.account,
            op=op,
            args=args,
            step=self.step_no if self.step_no >= 0 else None,
        )
        try:
            outcome, result = run()
        except BaseException as exc:
            self.history.interrupted(h, exc, self._retire)
            raise
        self.history.settle(h, outcome, result, self._retire)
        return outcome, result

    def read(
        self,
        op: str,
        method: str,
        params: Any,
        summarise: Callable[[Any], dict[str, Any]] = lambda r: {"result": r},
    ) -> RpcReply:
        """A recorded read of one request; the result kept is `summarise(result)`."""
        reply: list[RpcReply] = []

        def run() -> tuple[Outcome, Mapping[str, Any] | None]:
            r = self.request(method, params)
            reply.append(r)
            return r.outcome, summarise(r.result) if r.outcome.type == "ok" else None

        self.op(op, {"method": method, "params": params}, run)
        return reply[0]


class Mix:
    """A user's seeded choices: which operation of a weighted `mix`, a uniform draw in
    [0, 1) (`pick`) and the think time. Three draws per step whatever the answers were,
    so the same seed gives the same decisions (as `personas.Brain` does)."""

    def __init__(self, args: DriverArgs) -> None:
        self.rng = random.Random(user_seed(args.seed, args.worker, args.persona, args.ordinal))
        self.mix = WeightedOps(args.settings["mix"])
        self.think_range = args.settings["think"]

    def next(self) -> tuple[str, float, float]:
        """(operation, pick, think seconds)."""
        u = self.rng.random()
        pick = self.rng.random()
        lo, hi = self.think_range
        think = round((lo + (hi - lo) * self.rng.random()) / 1e9, 3)
        return self.mix.choose(u), pick, think


class BlockReader(JsonRpcDriver):
    """Base of a reader user: its `Mix`, the highest block number it has seen and the
    hashes of recent transactions, learnt from the blocks it reads (`_get_block`)."""

    def __init__(self, args: DriverArgs) -> None:
        super().__init__(args)
        self.mix = Mix(args)
        self.head: int | None = None
        self.recent_tx: deque[str] = deque(maxlen=64)

    def start(self) -> None:
        pass

    @abstractmethod
    def _get_block(self, number: int | None) -> None:
        """Read block `number` (None: the latest) and `note_block` what it answered."""

    def note_block(self, r: RpcReply, number_key: str, tx_hash: Callable[[Any], Any]) -> None:
        """Learn the head and the last transactions' hashes from a block read."""
        res = r.result
        if r.outcome.type != "ok" or not isinstance(res, Mapping):
            return
        n = quantity(res.get(number_key))
        if n is not None:
            self.head = max(self.head or 0, n)
        for tx in (res.get("transactions") or [])[-8:]:
            h = tx_hash(tx)
            if isinstance(h, str):
                self.recent_tx.append(h)

    def recent_tx_hash(self, pick: float) -> str | None:
        """A recent transaction's hash, chosen by `pick`; with none seen yet, the latest
        block is read first."""
        tx: str | None = pick_item(list(self.recent_tx), pick)
        if tx is None:
            self._get_block(None)
            tx = pick_item(list(self.recent_tx), pick)
        return tx
