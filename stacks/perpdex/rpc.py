"""JSON-RPC 2.0 node in the style of Starknet, at ``POST /``.

History (blocks, transactions, receipts, events) is read from Postgres; current state
(balance, position, order, markets) comes from the sequencer; writes are forwarded to
the sequencer (a JSON-RPC batch of writes becomes one sequencer call).

Methods: starknet_blockNumber, starknet_blockHashAndNumber, starknet_chainId,
starknet_getBlockWithTxs, starknet_getStateUpdate, starknet_addInvokeTransaction,
starknet_getTransactionReceipt, starknet_call (entry points balance, position, order,
markets), starknet_getEvents. Invoke transactions must be signed by their signer
(common/signing.py): the node checks before forwarding (55, `data.field` "signature").

Errors are JSON-RPC error objects: -32700 parse, -32600 invalid request, -32601 no such
method, -32602 invalid params, -32603 internal, 24 block not found, 29 transaction not
found, 40 order not found, 55 transaction rejected as malformed, -32001 unavailable
(sequencer or database down: nothing happened, or for a write: unknown), -32002 a write
not committed in time (unknown outcome). With the `admission_control` switch, writes past
`admission_inflight` write requests in flight (a batch of writes is one) or while the loop
runs `admission_lag` behind, or refused by the sequencer's bounded mempool, are
-32001 with `data: {code: "overloaded" | "mempool_full", retry_after_s}` (nothing was
sent or queued); a single such request is HTTP 503 with `Retry-After`. A request that cannot be used as a whole (not
JSON, nested deeper than 32, an empty batch or one of more than MAX_BATCH calls) is HTTP
400 with its -32700/-32600 error object; a body over MAX_BODY bytes is HTTP 413.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from l2chaos.stacks.perpdex.common.config import Common, env_int, env_str, env_url
from l2chaos.stacks.perpdex.common.db import DB_ERRORS, wait_for_pool
from l2chaos.stacks.perpdex.common.http import (
    Service,
    admission_limit,
    dumps,
    json_response,
    overloaded,
    run_main,
)
from l2chaos.stacks.perpdex.common.inputs import MAX_INT, InputError, loads_bounded
from l2chaos.stacks.perpdex.common.keys import KeyRing
from l2chaos.stacks.perpdex.common.log import JsonLog
from l2chaos.stacks.perpdex.common.signing import SignatureError, Verifier
from l2chaos.stacks.perpdex.markets import MARKETS

__all__ = ["MAX_BATCH", "MAX_BODY", "RpcError", "RpcService"]

CHAIN_ID = "0x" + b"PERPDEX".hex()
MAX_BATCH = 1000  # calls in one JSON-RPC batch (the bridge relays at most 1000 at once)
MAX_BODY = 1024 * 1024  # bytes


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            out["data"] = self.data
        return out


def _unavailable(what: str, exc: BaseException) -> RpcError:
    return RpcError(-32001, f"{what} unavailable", {"reason": repr(exc)})


@dataclass(frozen=True)
class RpcConfig:
    common: Common
    sequencer_url: str
    db_url: str
    pool_size: int
    timeout_ms: int
    admission: tuple[int, int] | None = None

    @classmethod
    def from_env(cls, common: Common, env: Mapping[str, str]) -> RpcConfig:
        return cls(
            common=common,
            sequencer_url=env_url(env, "PERPDEX_SEQUENCER_URL"),
            db_url=env_str(env, "PERPDEX_DB_URL"),
            pool_size=env_int(env, "PERPDEX_RPC_POOL", 8, min=1, max=100),
            timeout_ms=env_int(env, "PERPDEX_TX_TIMEOUT_MS", 10_000, min=1) + 2000,
            admission=admission_limit(common, env),
        )


def _params(p: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """Named or positional params as a dict."""
    if p is None:
        return {}
    if isinstance(p, dict):
        return p
    if isinstance(p, list):
        return dict(zip(names, p, strict=False))
    raise RpcError(-32602, "params must be an object or a list")


def _int(v: Any, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not -MAX_INT < v < MAX_INT:
        raise RpcError(-32602, f"{name} must be an integer below 2**62", {"field": name})
    return v


def _retry_after(answer: dict[str, Any]) -> int | None:
    """The Retry-After of a single answer refused for load (admission control)."""
    err = answer.get("error")
    data = err.get("data") if isinstance(err, dict) else None
    if not isinstance(data, dict) or data.get("code") not in ("overloaded", "mempool_full"):
        return None
    retry = data.get("retry_after_s")
    return retry if isinstance(retry, int) else None


def _whole_request_error(code: int, message: str) -> web.Response:
    """An error about the request as a whole: HTTP 400 with the JSON-RPC error object."""
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}
    return json_response(body, 400)


class RpcService(Service):
    max_body = MAX_BODY

    def __init__(self, cfg: RpcConfig, log: JsonLog) -> None:
        super().__init__(cfg.common, log, cfg.admission)
        self.cfg = cfg
        self.verifier = Verifier(KeyRing(cfg.common.seed, cfg.common.admin_token))
        self.pool: Any = None
        self.http: aiohttp.ClientSession | None = None
        self.app.router.add_post("/", self.handle)
        self.methods = {
            "starknet_blockNumber": self.block_number,
            "starknet_blockHashAndNumber": self.block_hash_and_number,
            "starknet_chainId": self.chain_id,
            "starknet_getBlockWithTxs": self.get_block_with_txs,
            "starknet_getStateUpdate": self.get_state_update,
            "starknet_getTransactionReceipt": self.get_receipt,
            "starknet_call": self.call,
            "starknet_getEvents": self.get_events,
        }

    def ready(self) -> tuple[bool, str]:
        if self.pool is None or self.http is None:
            return False, "starting"
        return True, "serving"

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.cfg.timeout_ms / 1000, connect=3)
        self.http = aiohttp.ClientSession(
            base_url=self.cfg.sequencer_url,
            timeout=timeout,
            connector=aiohttp.TCPConnector(limit=512, force_close=False),
            json_serialize=dumps,
        )
        self.pool = await wait_for_pool(
            self.cfg.db_url, name="perpdex-rpc", log=self.log, max_size=self.cfg.pool_size
        )

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.close()
        if self.pool is not None:
            self.pool.terminate()

    # ------------------------------------------------------------------ dispatch

    async def handle(self, request: web.Request) -> web.Response:
        try:
            body = loads_bounded(await request.read())
        except InputError as exc:
            return _whole_request_error(-32700, f"parse error: {exc}")
        if isinstance(body, list):
            if not body:
                return _whole_request_error(-32600, "empty batch")
            if len(body) > MAX_BATCH:
                return _whole_request_error(
                    -32600, f"a batch of {len(body)} calls; at most {MAX_BATCH} are allowed"
                )
            return json_response(await self._batch(body))
        answer = await self._one(body)
        retry = _retry_after(answer)
        return json_response(answer, 200 if retry is None else 503, retry_after=retry)

    def _check(self, req: Any) -> tuple[Any, str, Any]:
        if not isinstance(req, dict) or req.get("jsonrpc") != "2.0":
            raise RpcError(-32600, "invalid request: expected {jsonrpc: '2.0', method, id}")
        method = req.get("method")
        if not isinstance(method, str):
            raise RpcError(-32600, "invalid request: method must be a string")
        return req.get("id"), method, req.get("params")

    async def _one(self, req: Any) -> dict[str, Any]:
        rid = req.get("id") if isinstance(req, dict) else None
        try:
            rid, method, params = self._check(req)
            if method == "starknet_addInvokeTransaction":
                result = (await self._add_invoke([params]))[0]
                if isinstance(result, RpcError):
                    raise result
            else:
                fn = self.methods.get(method)
                if fn is None:
                    raise RpcError(-32601, f"method not found: {method}")
                result = await fn(params)
            return {"jsonrpc": "2.0", "id": rid, "result": result}
        except RpcError as exc:
            return {"jsonrpc": "2.0", "id": rid, "error": exc.to_json()}
        except Exception as exc:
            self.log.error("rpc method failed", error=repr(exc))
            return {
                "jsonrpc": "2.0",
                "id": rid,
                "error": {"code": -32603, "message": "internal error"},
            }

    async def _batch(self, reqs: list[Any]) -> list[dict[str, Any]]:
        """Writes in a batch go to the sequencer in one call; reads run concurrently."""
        out: list[dict[str, Any] | None] = [None] * len(reqs)
        writes: list[tuple[int, Any, Any]] = []
        reads: list[tuple[int, Any]] = []
        for i, req in enumerate(reqs):
            try:
                rid, method, params = self._check(req)
            except RpcError as exc:
                out[i] = {"jsonrpc": "2.0", "id": None, "error": exc.to_json()}
                continue
            if method == "starknet_addInvokeTransaction":
                writes.append((i, rid, params))
            else:
                reads.append((i, req))
        if writes:
            results = await self._add_invoke([p for _, _, p in writes])
            for (i, rid, _), res in zip(writes, results, strict=True):
                if isinstance(res, RpcError):
                    out[i] = {"jsonrpc": "2.0", "id": rid, "error": res.to_json()}
                else:
                    out[i] = {"jsonrpc": "2.0", "id": rid, "result": res}
        answers = await asyncio.gather(*(self._one(req) for _, req in reads))
        for (i, _), ans in zip(reads, answers, strict=True):
            out[i] = ans
        return [o for o in out if o is not None]

    # ------------------------------------------------------------------ sequencer

    async def _seq(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        assert self.http is not None
        try:
            async with self.http.request(method, path, json=body) as resp:
                return resp.status, await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise _unavailable("sequencer", exc) from None

    async def _add_invoke(self, params_list: list[Any]) -> list[Any]:
        gate = self.admission
        if gate is None:
            return await self._forward_invoke(params_list)
        if not gate.enter(time.monotonic_ns()):
            refused = overloaded(gate)
            data = {"code": refused.code, "message": refused.message}
            err = RpcError(-32001, "overloaded", {**data, "retry_after_s": refused.retry_after})
            return [err] * len(params_list)
        try:
            return await self._forward_invoke(params_list)
        finally:
            gate.leave(time.monotonic_ns())

    async def _forward_invoke(self, params_list: list[Any]) -> list[Any]:
        results: list[Any] = [None] * len(params_list)
        valid: list[tuple[int, dict[str, Any]]] = []
        for i, params in enumerate(params_list):
            try:
                tx = _params(params, ("invoke_transaction",)).get("invoke_transaction")
            except RpcError as exc:
                results[i] = exc
                continue
            if not isinstance(tx, dict):
                results[i] = RpcError(-32602, "invoke_transaction must be an object")
                continue
            try:
                self.verifier.verify(tx)
            except SignatureError as exc:
                data = {"code": "bad_signature", "message": exc.message, "field": exc.field}
                results[i] = RpcError(55, f"invalid transaction: {exc.message}", data)
                continue
            valid.append((i, tx))
        if not valid:
            return results
        try:
            status, answer = await self._seq("POST", "/txs", [tx for _, tx in valid])
        except RpcError as exc:
            return [exc if r is None else r for r in results]
        if status != 200 or not isinstance(answer, list):
            err = RpcError(-32001, "sequencer unavailable", {"status": status, "answer": answer})
            return [err if r is None else r for r in results]
        for (i, _), res in zip(valid, answer, strict=True):
            results[i] = self._tx_result(res)
        return results

    @staticmethod
    def _tx_result(res: Any) -> Any:
        if isinstance(res, dict) and "error" in res:
            err = res["error"]
            code = res.get("status_code", 400)
            if code in (400, 403):
                return RpcError(55, f"invalid transaction: {err.get('message')}", err)
            if code == 504:
                data = {**err, "transaction_hash": res.get("transaction_hash")}
                return RpcError(-32002, "transaction not committed in time", data)
            return RpcError(-32001, "sequencer unavailable", err)
        return {"transaction_hash": res["transaction_hash"], "receipt": res}

    async def _state(self, path: str, not_found: tuple[int, str]) -> Any:
        status, answer = await self._seq("GET", path)
        if status == 404:
            raise RpcError(*not_found)
        if status != 200:
            raise RpcError(-32001, "sequencer unavailable", {"status": status})
        return answer

    # ------------------------------------------------------------------ database

    async def _db(self, query: str, *args: Any, one: bool = False) -> Any:
        try:
            if one:
                return await self.pool.fetchrow(query, *args)
            return await self.pool.fetch(query, *args)
        except asyncpg.DataError as exc:  # a value the database cannot take: the caller's
            raise RpcError(-32602, f"invalid params: {exc}") from None
        except DB_ERRORS as exc:
            raise _unavailable("database", exc) from None

    async def _block_by_hash(self, block_hash: str) -> Any:
        """The block with this hash, None if there is none (the newest of a hash that
        came again after a rollback)."""
        return await self._db(
            "SELECT * FROM blocks WHERE hash = $1 ORDER BY seq DESC LIMIT 1", block_hash, one=True
        )

    async def _block_row(self, block_id: Any) -> Any:
        if block_id is None or block_id in ("latest", "pending"):
            row = await self._db(
                "SELECT * FROM blocks WHERE canonical ORDER BY seq DESC LIMIT 1", one=True
            )
        elif isinstance(block_id, dict) and "block_hash" in block_id:
            row = await self._block_by_hash(str(block_id["block_hash"]))
        elif isinstance(block_id, dict) and "block_seq" in block_id:
            row = await self._db(
                "SELECT * FROM blocks WHERE seq = $1",
                _int(block_id["block_seq"], "block_seq"),
                one=True,
            )
        else:
            n = block_id.get("block_number") if isinstance(block_id, dict) else block_id
            row = await self._db(
                "SELECT * FROM blocks WHERE canonical AND number = $1",
                _int(n, "block_number"),
                one=True,
            )
        if row is None:
            raise RpcError(24, "block not found", {"block_id": block_id})
        return row

    async def _block_of(self, params: Any) -> Any:
        """The block a method's `block_id` parameter names (the latest without one)."""
        return await self._block_row(_params(params, ("block_id",)).get("block_id", "latest"))

    @staticmethod
    def _block_json(row: Any) -> dict[str, Any]:
        return {
            "block_hash": row["hash"],
            "parent_hash": row["parent_hash"],
            "block_number": row["number"],
            "block_seq": row["seq"],
            "new_root": row["state_root"],
            "tx_root": row["tx_root"],
            "timestamp": row["chain_ts_ns"] // 1_000_000_000,
            "chain_ts_ns": row["chain_ts_ns"],
            "host_ts_ns": row["host_ts_ns"],
            "status": "ACCEPTED_ON_L2" if row["canonical"] else "ORPHANED",
            "canonical": row["canonical"],
            "mode": row["mode"],
        }

    # ------------------------------------------------------------------ methods

    async def block_number(self, params: Any) -> int:
        row = await self._block_row("latest")
        return int(row["number"])

    async def block_hash_and_number(self, params: Any) -> dict[str, Any]:
        row = await self._block_row("latest")
        return {"block_hash": row["hash"], "block_number": row["number"]}

    async def chain_id(self, params: Any) -> str:
        return CHAIN_ID

    async def get_block_with_txs(self, params: Any) -> dict[str, Any]:
        row = await self._block_of(params)
        txs = await self._db(
            "SELECT hash, status, reason, body FROM transactions WHERE block_seq = $1 ORDER BY idx",
            row["seq"],
        )
        out = self._block_json(row)
        out["transactions"] = [
            {
                "transaction_hash": t["hash"],
                "status": t["status"],
                "reason": t["reason"],
                **json.loads(t["body"]),
            }
            for t in txs
        ]
        return out

    async def get_state_update(self, params: Any) -> dict[str, Any]:
        row = await self._block_of(params)
        parent = await self._block_by_hash(row["parent_hash"])
        snaps = await self._db(
            "SELECT account, cash, positions FROM account_snapshots WHERE block_seq = $1 ORDER BY account",
            row["seq"],
        )
        prices = await self._db(
            "SELECT * FROM prices WHERE block_seq = $1 ORDER BY market", row["seq"]
        )
        return {
            "block_hash": row["hash"],
            "block_number": row["number"],
            "new_root": row["state_root"],
            "old_root": parent["state_root"] if parent is not None else None,
            "state_diff": {
                "accounts": [
                    {
                        "account": s["account"],
                        "cash": s["cash"],
                        "positions": json.loads(s["positions"]),
                    }
                    for s in snaps
                ],
                "markets": [
                    {
                        k: r[k]
                        for k in (
                            "market",
                            "index_price",
                            "mark_price",
                            "funding_index",
                            "index_ts_ns",
                        )
                    }
                    for r in prices
                ],
            },
        }

    async def get_receipt(self, params: Any) -> dict[str, Any]:
        p = _params(params, ("transaction_hash",))
        h = p.get("transaction_hash")
        if not isinstance(h, str):
            raise RpcError(
                -32602, "transaction_hash must be a string", {"field": "transaction_hash"}
            )
        rows = await self._db(
            "SELECT t.receipt, t.block_seq, b.number, b.hash, b.canonical FROM transactions t "
            "JOIN blocks b ON b.seq = t.block_seq WHERE t.hash = $1 ORDER BY b.canonical DESC, t.block_seq DESC",
            h,
        )
        if not rows:
            raise RpcError(29, "transaction hash not found", {"transaction_hash": h})
        r = rows[0]
        receipt: dict[str, Any] = json.loads(r["receipt"])
        receipt.update(
            block_number=r["number"],
            block_seq=r["block_seq"],
            block_hash=r["hash"],
            finality_status="ACCEPTED_ON_L2" if r["canonical"] else "ORPHANED",
            execution_status="SUCCEEDED" if receipt.get("status") == "accepted" else "REVERTED",
        )
        return receipt

    async def call(self, params: Any) -> Any:
        p = _params(params, ("request", "block_id"))
        req = p.get("request")
        if not isinstance(req, dict):
            raise RpcError(-32602, "request must be an object {entry_point_selector, calldata}")
        entry = req.get("entry_point_selector")
        data = req.get("calldata") or []
        if not isinstance(data, list):
            raise RpcError(-32602, "calldata must be a list", {"field": "calldata"})
        if entry == "balance":
            if len(data) != 1:
                raise RpcError(-32602, "balance takes [account]", {"field": "calldata"})
            return await self._state(
                f"/state/accounts/{_int(data[0], 'account')}", (-32602, "bad account")
            )
        if entry == "position":
            if len(data) != 2 or not isinstance(data[1], str) or data[1] not in MARKETS:
                raise RpcError(-32602, "position takes [account, market]", {"field": "calldata"})
            acct = await self._state(
                f"/state/accounts/{_int(data[0], 'account')}", (-32602, "bad account")
            )
            for pos in acct["positions"]:
                if pos["market"] == data[1]:
                    return pos
            return {"market": data[1], "size": 0, "cached_index": 0}
        if entry == "order":
            if len(data) != 1:
                raise RpcError(-32602, "order takes [order_id]", {"field": "calldata"})
            oid = _int(data[0], "order_id")
            status, answer = await self._seq("GET", f"/state/orders/{oid}")
            if status == 200:
                return answer
            row = await self._db("SELECT * FROM orders WHERE order_id = $1", oid, one=True)
            if row is None:
                raise RpcError(40, "order not found", {"order_id": oid})
            return {k: row[k] for k in row if k not in ("created_block_seq", "updated_block_seq")}
        if entry == "markets":
            return await self._state("/state/markets", (-32001, "sequencer unavailable"))
        if entry == "head":
            return await self._state("/state/head", (-32001, "sequencer unavailable"))
        raise RpcError(
            -32602,
            f"unknown entry point {entry!r}; known: balance, position, order, markets, head",
            {"field": "entry_point_selector"},
        )

    async def get_events(self, params: Any) -> dict[str, Any]:
        p = _params(params, ("filter",))
        f = p.get("filter", p)
        if not isinstance(f, dict):
            raise RpcError(-32602, "filter must be an object")
        chunk = _int(f.get("chunk_size", 100), "chunk_size")
        if not 1 <= chunk <= 1000:
            raise RpcError(-32602, "chunk_size must be 1..1000", {"field": "chunk_size"})
        after = _event_seq(f.get("continuation_token", f.get("from_seq", 0)))
        kinds = f.get("kinds")
        if kinds is not None and (
            not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds)
        ):
            raise RpcError(-32602, "kinds must be a list of event kinds", {"field": "kinds"})
        account = f.get("account")
        if account is not None:
            account = _int(account, "account")
        try:
            async with (
                self.pool.acquire() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                head = await conn.fetchrow(
                    "SELECT seq, number FROM blocks WHERE canonical ORDER BY seq DESC LIMIT 1"
                )
                rows = await conn.fetch(
                    "SELECT e.*, b.canonical FROM events e JOIN blocks b ON b.seq = e.block_seq "
                    "WHERE e.seq > $1 AND ($2::text[] IS NULL OR e.kind = ANY($2::text[])) "
                    "AND ($3::bigint IS NULL OR e.account = $3) ORDER BY e.seq LIMIT $4",
                    after,
                    kinds,
                    account,
                    chunk,
                )
        except asyncpg.DataError as exc:
            raise RpcError(-32602, f"invalid params: {exc}") from None
        except DB_ERRORS as exc:
            raise _unavailable("database", exc) from None
        events = [
            {
                "seq": r["seq"],
                "block": r["block"],
                "block_seq": r["block_seq"],
                "canonical": r["canonical"],
                "host_ts_ns": r["host_ts_ns"],
                "chain_ts_ns": r["chain_ts_ns"],
                "kind": r["kind"],
                "tx": r["tx"],
                "data": json.loads(r["data"]),
                "ledger": json.loads(r["ledger"]) if r["ledger"] is not None else None,
            }
            for r in rows
        ]
        return {
            "events": events,
            "continuation_token": str(events[-1]["seq"]) if len(events) == chunk else None,
            "last_seq": events[-1]["seq"] if events else after,
            "head": {"block_number": head["number"], "block_seq": head["seq"]} if head else None,
        }


def _event_seq(start: Any) -> int:
    """Where getEvents starts: an event seq as an integer or its ASCII decimal text."""
    if start is None or start == "":
        return 0
    if isinstance(start, str) and start.isascii() and start.isdigit() and len(start) <= 19:
        start = int(start)
    if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start < MAX_INT:
        raise RpcError(
            -32602,
            "continuation_token/from_seq must be an event seq (an integer 0..2**62-1)",
            {"field": "continuation_token"},
        )
    return start


def main() -> None:
    run_main("rpc", RpcService, RpcConfig.from_env)


if __name__ == "__main__":
    main()
