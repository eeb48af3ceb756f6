"""The REST API traders use (`X-API-Key`), in front of rpc (and the bridge for deposits).

    GET    /v1/markets        markets, prices, parameters, trading mode
    GET    /v1/account        cash, equity, margins
    GET    /v1/positions      positions with mark and liquidation price
    GET    /v1/orders         open orders
    POST   /v1/orders         {market, side, type, size, price?, post_only?, reduce_only?, client_id?}
    DELETE /v1/orders/{id}
    POST   /v1/deposits       {amount}   (locked on L1 by the bridge, credited on L2 later)
    POST   /v1/withdrawals    {amount}
    GET    /admin/accounts    [{account, api_key, role}]
    GET    /admin/stats       {writes, write_requests}: writes sent to the rpc, and the
                              requests that carried them (one event-loop turn's writes
                              go as one JSON-RPC batch)
    POST   /admin/probe/order the harness's order round trip, as the probe account: a
                              post-only bid 4% under the index (never fills), then its
                              cancel; 200 when both were accepted, else 503/504

Money is decimal strings in USD, sizes in asset units. Every request is validated
before anything is sent: malformed JSON, unknown fields, an unknown market, a size that
is not a positive multiple of the step, a price that is not a number on the tick, an
unknown key... answer 4xx `{"error": {"code", "message", "field"}}` and change nothing.
A rejection by the exchange is 422 with the reason as code; 503 when the chain is
unavailable; 504 when a write was sent but its outcome is unknown. With the
`admission_control` switch, a /v1 request or an order probe past `admission_inflight`
in flight or while the event loop runs more than `admission_lag` behind, or one the rpc
or the sequencer behind refused for load, is 503 `overloaded` with `Retry-After`
(nothing was sent).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
from aiohttp import web
from l2chaos.stacks.perpdex.common.batching import TurnBatcher
from l2chaos.stacks.perpdex.common.config import Common, env_int, env_url
from l2chaos.stacks.perpdex.common.http import (
    ApiError,
    Service,
    admission_limit,
    dumps,
    json_response,
    read_json,
    run_main,
)
from l2chaos.stacks.perpdex.common.inputs import InputError, parse_int_text
from l2chaos.stacks.perpdex.common.keys import KeyRing
from l2chaos.stacks.perpdex.common.log import JsonLog
from l2chaos.stacks.perpdex.common.signing import sign
from l2chaos.stacks.perpdex.markets import (
    FUNDING_SCALE,
    MARKETS,
    AccountLayout,
    UnitError,
    format_quote,
    parse_quote,
)

__all__ = ["UiApiService"]

_CLIENT_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}\Z")
_MAX_AMOUNT = 10**15  # quote quanta: $1e9
_MAX_SIZE = 10**15
_MAX_PRICE = 10**15
# Writes sent in one JSON-RPC batch at most (the rpc takes up to 1000 calls, 1 MiB).
_WRITE_BATCH = 100
_MISSING = object()
_ORDER_FIELDS = {"market", "side", "type", "size", "price", "post_only", "reduce_only", "client_id"}


@dataclass(frozen=True)
class UiApiConfig:
    common: Common
    rpc_url: str
    bridge_url: str
    layout: AccountLayout
    timeout_ms: int
    admission: tuple[int, int] | None = None

    @classmethod
    def from_env(cls, common: Common, env: Mapping[str, str]) -> UiApiConfig:
        return cls(
            common=common,
            rpc_url=env_url(env, "PERPDEX_RPC_URL"),
            bridge_url=env_url(env, "PERPDEX_BRIDGE_URL"),
            layout=AccountLayout(env_int(env, "PERPDEX_ACCOUNTS", 1000, min=1, max=1_000_000)),
            timeout_ms=env_int(env, "PERPDEX_TX_TIMEOUT_MS", 10_000, min=1) + 4000,
            admission=admission_limit(common, env),
        )


def _bad(field: str, message: str, code: str = "invalid") -> ApiError:
    return ApiError(400, code, message, field)


def _client_id(body: dict[str, Any], prefix: str) -> str:
    """The request's client_id (its identity: a replay is the same request), or a fresh one."""
    client_id = body.get("client_id")
    if client_id is None:
        return f"{prefix}-{time.time_ns()}-{uuid.uuid4().hex[:8]}"
    if not isinstance(client_id, str) or not _CLIENT_ID.match(client_id):
        raise _bad("client_id", "client_id must be 1-64 characters of A-Z a-z 0-9 _ . : -")
    return client_id


def _unavailable(message: str, retry_after: object) -> ApiError:
    """503; `overloaded` with Retry-After when the service behind refused for load (its
    Retry-After header or JSON-RPC `data.retry_after_s`)."""
    try:
        seconds = int(str(retry_after)) if retry_after is not None else None
    except ValueError:
        seconds = None
    if seconds is None or seconds < 0:
        return ApiError(503, "unavailable", message)
    return ApiError(503, "overloaded", message, retry_after=seconds)


def _result(answer: Any) -> Any:
    """The result of one JSON-RPC answer; its error as the ApiError the client sees."""
    if answer is _MISSING:
        raise ApiError(503, "unavailable", "the rpc's batch answer has no answer to this call")
    if not isinstance(answer, dict):
        raise ApiError(503, "unavailable", "malformed rpc answer")
    err = answer.get("error")
    if err is None:
        return answer.get("result")
    if not isinstance(err, dict):
        raise ApiError(503, "unavailable", "malformed rpc error")
    code = err.get("code")
    if code == -32002:
        raise ApiError(504, "timeout", "the transaction was sent but is not committed yet")
    if code == 40:
        raise ApiError(404, "unknown_order", "no such order", "order_id")
    data = err.get("data") or {}
    if code == 55:
        raise ApiError(400, "invalid", str(err.get("message")), data.get("field"))
    raise _unavailable(
        f"the chain is unavailable: {err.get('message')}",
        data.get("retry_after_s") if isinstance(data, dict) else None,
    )


def _copy(exc: ApiError) -> ApiError:
    """One exception per waiting request: an exception object raised in several tasks
    would collect all their tracebacks."""
    return ApiError(exc.status, exc.code, exc.message, exc.field, exc.retry_after)


def _usd_price(market: str, p: int | None) -> str | None:
    return None if p is None else MARKETS[market].price_to_usd(p)


class UiApiService(Service):
    def __init__(self, cfg: UiApiConfig, log: JsonLog) -> None:
        super().__init__(cfg.common, log, cfg.admission)
        self.cfg = cfg
        ring = KeyRing(cfg.common.seed, cfg.common.admin_token)
        self.keys = {ring.api_key(a): a for a in cfg.layout.users()}
        self.signing = {a: ring.signing_key(f"account:{a}") for a in cfg.layout.users()}
        self.rpc: aiohttp.ClientSession | None = None
        self.bridge: aiohttp.ClientSession | None = None
        self._rid = 0
        self._writes = TurnBatcher[dict[str, Any], Any](self._send_writes, _WRITE_BATCH)
        r = self.app.router
        r.add_get("/v1/markets", self.markets)
        r.add_get("/v1/account", self.account)
        r.add_get("/v1/positions", self.positions)
        r.add_get("/v1/orders", self.orders)
        r.add_post("/v1/orders", self.place)
        r.add_delete("/v1/orders/{order_id}", self.cancel)
        r.add_post("/v1/deposits", self.deposit)
        r.add_post("/v1/withdrawals", self.withdraw)
        r.add_get("/admin/accounts", self.admin_accounts)
        r.add_post("/admin/probe/order", self.admin_probe_order)
        r.add_get("/admin/stats", self.admin_stats)

    def ready(self) -> tuple[bool, str]:
        return (self.rpc is not None, "serving" if self.rpc is not None else "starting")

    def gated(self, request: web.Request) -> bool:
        return request.path.startswith("/v1/") or request.path == "/admin/probe/order"

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.cfg.timeout_ms / 1000, connect=3)
        self.rpc = aiohttp.ClientSession(
            base_url=self.cfg.rpc_url,
            timeout=timeout,
            connector=aiohttp.TCPConnector(limit=512),
            json_serialize=dumps,
        )
        self.bridge = aiohttp.ClientSession(
            base_url=self.cfg.bridge_url, timeout=timeout, json_serialize=dumps
        )

    async def stop(self) -> None:
        await self._writes.aclose()
        for s in (self.rpc, self.bridge):
            if s is not None:
                await s.close()

    # ------------------------------------------------------------------ plumbing

    def _account(self, request: web.Request) -> int:
        key = request.headers.get("X-API-Key")
        if not key:
            raise ApiError(401, "unauthorized", "missing X-API-Key header", "X-API-Key")
        acct = self.keys.get(key)
        if acct is None:
            raise ApiError(401, "unauthorized", "unknown API key", "X-API-Key")
        return acct

    def _request(self, method: str, params: Any) -> dict[str, Any]:
        self._rid += 1
        return {"jsonrpc": "2.0", "id": self._rid, "method": method, "params": params}

    async def _post(self, body: dict[str, Any] | list[dict[str, Any]]) -> Any:
        """One HTTP request to the rpc: its JSON answer; transport errors as 503/504."""
        assert self.rpc is not None
        try:
            async with self.rpc.post("/", json=body) as resp:
                if resp.status != 200:
                    raise _unavailable(
                        f"rpc answered {resp.status}", resp.headers.get("Retry-After")
                    )
                return await resp.json(content_type=None)
        except TimeoutError:
            raise ApiError(504, "timeout", "the chain did not answer in time") from None
        except (aiohttp.ClientError, ValueError) as exc:
            raise ApiError(503, "unavailable", f"the chain is unavailable: {exc!r}") from None

    async def _call(self, method: str, params: Any) -> Any:
        """One JSON-RPC call; maps transport and node errors to 503/504."""
        return _result(await self._post(self._request(method, params)))

    async def _send_writes(self, params: list[Any]) -> list[Any | BaseException]:
        """The writes of one event-loop turn, as one JSON-RPC batch (a lone write goes
        as a single call): each write's result, or the ApiError it answers."""
        calls = [self._request("starknet_addInvokeTransaction", p) for p in params]
        try:
            answer = await self._post(calls[0] if len(calls) == 1 else calls)
        except ApiError as exc:
            return [_copy(exc) for _ in calls]
        if len(calls) == 1:
            answers = [answer]
        elif isinstance(answer, list):
            by_id = {a.get("id"): a for a in answer if isinstance(a, dict)}
            answers = [by_id.get(c["id"], _MISSING) for c in calls]
        else:
            answers = [None] * len(calls)
        out: list[Any | BaseException] = []
        for a in answers:
            try:
                out.append(_result(a))
            except ApiError as exc:
                out.append(exc)
        return out

    async def _submit(self, tx: dict[str, Any]) -> dict[str, Any]:
        """Sign the transaction with its account's key and send it; its receipt."""
        signed = sign(self.signing[tx["account"]], tx)
        result = await self._writes.submit({"invoke_transaction": signed})
        receipt: dict[str, Any] = result["receipt"]
        return receipt

    async def _answer(
        self,
        tx: dict[str, Any],
        fields: Callable[[dict[str, Any]], dict[str, Any]],
        status: int = 200,
    ) -> web.Response:
        """Submit `tx`: the answer to its rejection, or to its acceptance (the
        transaction's hash and block, and `fields` of the receipt)."""
        receipt = await self._submit(tx)
        if receipt["status"] != "accepted":
            return self._rejected(receipt)
        body = {
            "tx_hash": receipt["transaction_hash"],
            "block": receipt["block_number"],
            "status": "accepted",
        }
        return json_response({**body, **fields(receipt)}, status)

    def _rejected(self, receipt: dict[str, Any]) -> web.Response:
        reason = str(receipt.get("reason"))
        status = 404 if reason == "unknown_order" else 422
        return json_response(
            {
                "error": {
                    "code": reason,
                    "message": f"rejected by the exchange: {reason}",
                    "field": None,
                },
                "tx_hash": receipt.get("transaction_hash"),
                "block": receipt.get("block_number"),
                "status": "rejected",
            },
            status,
        )

    async def _body(self, request: web.Request, allowed: set[str]) -> dict[str, Any]:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise _bad(
                "(body)", "expected a JSON object", "malformed_json" if body is None else "invalid"
            )
        for k in body:
            if k not in allowed:
                raise _bad(k, f"unknown field {k!r}; allowed: {', '.join(sorted(allowed))}")
        return body

    # ------------------------------------------------------------------ reads

    async def markets(self, request: web.Request) -> web.Response:
        self._account(request)
        data = await self._call(
            "starknet_call", {"request": {"entry_point_selector": "markets", "calldata": []}}
        )
        out = []
        for m in data["markets"]:
            mk = MARKETS[m["market"]]
            out.append(
                {
                    "market": m["market"],
                    "index_price": _usd_price(mk.name, m["index_price"]),
                    "mark_price": _usd_price(mk.name, m["mark_price"]),
                    "best_bid": _usd_price(mk.name, m["best_bid"]),
                    "best_ask": _usd_price(mk.name, m["best_ask"]),
                    "funding_index": str(Decimal(m["funding_index"]) / FUNDING_SCALE),
                    "index_ts_ns": m["index_ts_ns"],
                    "size_step": mk.step_units,
                    "price_tick": mk.tick_usd,
                    "imf": str(Decimal(mk.imf_bps) / 10_000),
                    "mmf": str(Decimal(mk.mmf_bps) / 10_000),
                    "maker_fee": str(Decimal(mk.maker_fee_bps) / 10_000),
                    "taker_fee": str(Decimal(mk.taker_fee_bps) / 10_000),
                    "band": str(Decimal(mk.band_bps) / 10_000),
                }
            )
        return json_response({"mode": data["mode"], "markets": out})

    async def _balance(self, acct: int) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(
            "starknet_call", {"request": {"entry_point_selector": "balance", "calldata": [acct]}}
        )
        return result

    async def account(self, request: web.Request) -> web.Response:
        acct = self._account(request)
        b = await self._balance(acct)
        return json_response(
            {
                "account": acct,
                "cash": format_quote(b["cash"]),
                "equity": format_quote(b["equity"]),
                "initial_margin": format_quote(b["initial_margin"]),
                "maintenance_margin": format_quote(b["maintenance_margin"]),
                "available": format_quote(b["equity"] - b["initial_margin"]),
            }
        )

    async def positions(self, request: web.Request) -> web.Response:
        acct = self._account(request)
        b = await self._balance(acct)
        out = []
        for p in b["positions"]:
            mk = MARKETS[p["market"]]
            out.append(
                {
                    "market": p["market"],
                    "size": mk.size_to_units(p["size"]),
                    "size_quanta": p["size"],
                    "side": "long" if p["size"] > 0 else "short",
                    "mark_price": _usd_price(mk.name, p["mark_price"]),
                    "liquidation_price": _usd_price(mk.name, p["liquidation_price"]),
                    "unsettled_funding": format_quote(-p["funding_owed_micro"] // FUNDING_SCALE),
                }
            )
        return json_response({"account": acct, "positions": out})

    def _order_json(self, o: dict[str, Any]) -> dict[str, Any]:
        mk = MARKETS[o["market"]]
        return {
            "order_id": o["order_id"],
            "market": o["market"],
            "side": o["side"],
            "type": o["type"],
            "price": _usd_price(mk.name, o["price"]),
            "size": mk.size_to_units(o["size"]),
            "remaining": mk.size_to_units(o["remaining"]),
            "post_only": o["post_only"],
            "reduce_only": o["reduce_only"],
            "client_id": o["client_id"],
            "status": o["status"],
        }

    async def orders(self, request: web.Request) -> web.Response:
        acct = self._account(request)
        b = await self._balance(acct)
        return json_response(
            {"account": acct, "orders": [self._order_json(o) for o in b["orders"]]}
        )

    # ------------------------------------------------------------------ writes

    def _validate_order(self, acct: int, body: dict[str, Any]) -> dict[str, Any]:
        market = body.get("market")
        if not isinstance(market, str):
            raise _bad("market", f"market is required; markets: {', '.join(MARKETS)}")
        mk = MARKETS.get(market)
        if mk is None:
            raise _bad(
                "market",
                f"unknown market {market!r}; markets: {', '.join(MARKETS)}",
                "unknown_market",
            )
        side = body.get("side")
        if side not in ("buy", "sell"):
            raise _bad("side", "side must be buy or sell")
        typ = body.get("type", "limit")
        if typ not in ("limit", "market"):
            raise _bad("type", "type must be limit or market")
        try:
            size = mk.size_from_units(body.get("size"))
        except UnitError as exc:
            raise _bad("size", str(exc)) from None
        if size <= 0 or size > _MAX_SIZE:
            raise _bad("size", f"size must be positive (at least {mk.step_units}) and sensible")
        price: int | None = None
        if typ == "limit":
            if "price" not in body or body["price"] is None:
                raise _bad("price", "a limit order needs a price")
            try:
                price = mk.price_from_usd(body["price"])
            except UnitError as exc:
                raise _bad("price", str(exc)) from None
            if price <= 0 or price > _MAX_PRICE:
                raise _bad("price", "price must be positive and sensible")
        elif body.get("price") is not None:
            raise _bad("price", "a market order takes no price")
        flags = {}
        for f in ("post_only", "reduce_only"):
            v = body.get(f, False)
            if not isinstance(v, bool):
                raise _bad(f, f"{f} must be true or false")
            flags[f] = v
        if flags["post_only"] and typ == "market":
            raise _bad("post_only", "a market order cannot be post-only")
        client_id = _client_id(body, "o")
        return {
            "kind": "order",
            "account": acct,
            "market": market,
            "side": side,
            "type": typ,
            "size": size,
            "price": price,
            **flags,
            "client_id": client_id,
        }

    async def place(self, request: web.Request) -> web.Response:
        acct = self._account(request)
        tx = self._validate_order(acct, await self._body(request, _ORDER_FIELDS))
        mk = MARKETS[tx["market"]]

        def placed(receipt: dict[str, Any]) -> dict[str, Any]:
            return {
                "order_id": receipt["order_id"],
                "order_status": receipt["order_status"],
                "remaining": mk.size_to_units(receipt["remaining"]),
                "client_id": tx["client_id"],
                "fills": [
                    {
                        "fill_id": f["fill_id"],
                        "price": mk.price_to_usd(f["price"]),
                        "size": mk.size_to_units(f["size"]),
                        "fee": format_quote(f["fee"]),
                    }
                    for f in receipt.get("fills", [])
                ],
            }

        return await self._answer(tx, placed, 201)

    async def cancel(self, request: web.Request) -> web.Response:
        acct = self._account(request)
        try:
            order_id = parse_int_text(request.match_info["order_id"], "order_id")
        except InputError as exc:
            raise _bad("order_id", str(exc)) from None
        tx = {
            "kind": "cancel",
            "account": acct,
            "order_id": order_id,
            "client_id": f"cancel-{order_id}",
        }
        return await self._answer(
            tx, lambda r: {"order_id": r["order_id"], "order_status": r["order_status"]}
        )

    def _amount(self, body: dict[str, Any]) -> int:
        if "amount" not in body:
            raise _bad("amount", "amount is required (USD, decimal string)")
        try:
            amount = parse_quote(body["amount"])
        except UnitError as exc:
            raise _bad("amount", str(exc)) from None
        if amount <= 0 or amount > _MAX_AMOUNT:
            raise _bad("amount", "amount must be positive and at most 1000000000 USD")
        return amount

    async def deposit(self, request: web.Request) -> web.Response:
        """Locked on L1 by the bridge; the same client_id again is the same deposit."""
        acct = self._account(request)
        body = await self._body(request, {"amount", "client_id"})
        amount = self._amount(body)
        client_id = _client_id(body, "d")
        assert self.bridge is not None
        request_body = sign(
            self.signing[acct],
            {"kind": "l1_deposit", "account": acct, "amount": amount, "client_id": client_id},
        )
        try:
            async with self.bridge.post("/deposits", json=request_body) as resp:
                answer = await resp.json(content_type=None)
                status = resp.status
        except TimeoutError:
            raise ApiError(504, "timeout", "the bridge did not answer in time") from None
        except (aiohttp.ClientError, ValueError) as exc:
            raise ApiError(503, "unavailable", f"the bridge is unavailable: {exc!r}") from None
        if status in (409, 422) and isinstance(answer, dict) and "error" in answer:
            err = answer["error"]
            raise ApiError(status, err["code"], err["message"], err.get("field"))
        if status != 201 or not isinstance(answer, dict):
            raise ApiError(503, "unavailable", f"the bridge answered {status}")
        return json_response(
            {
                "nonce": answer["nonce"],
                "amount": format_quote(amount),
                "status": answer["status"],
                "l1_seq": answer.get("l1_seq"),
                "client_id": client_id,
                "replayed": answer.get("replayed", False),
            },
            201,
        )

    async def withdraw(self, request: web.Request) -> web.Response:
        acct = self._account(request)
        body = await self._body(request, {"amount", "client_id"})
        amount = self._amount(body)
        client_id = _client_id(body, "w")
        tx = {"kind": "withdraw", "account": acct, "amount": amount, "client_id": client_id}
        return await self._answer(
            tx, lambda r: {"nonce": r["nonce"], "amount": format_quote(amount)}, 201
        )

    async def admin_accounts(self, request: web.Request) -> web.Response:
        layout = self.cfg.layout
        ring = KeyRing(self.cfg.common.seed, self.cfg.common.admin_token)
        return json_response(
            [
                {"account": a, "api_key": ring.api_key(a), "role": layout.role(a)}
                for a in layout.users()
            ]
        )

    async def admin_stats(self, request: web.Request) -> web.Response:
        """How writes reached the rpc: calls, and the requests that carried them."""
        return json_response({"writes": self._writes.items, "write_requests": self._writes.groups})

    async def admin_probe_order(self, request: web.Request) -> web.Response:
        acct = self.cfg.layout.probe
        start = time.perf_counter()
        data = await self._call(
            "starknet_call", {"request": {"entry_point_selector": "markets", "calldata": []}}
        )
        m = data["markets"][0]
        mk = MARKETS[m["market"]]
        index = m["index_price"] if m["index_price"] > 0 else mk.ref_price
        price = max(1, index - index * 400 // 10_000)
        self._probe_seq = getattr(self, "_probe_seq", 0) + 1
        tag = f"probe-{time.time_ns()}-{self._probe_seq}"
        placed = await self._submit(
            {
                "kind": "order",
                "account": acct,
                "market": mk.name,
                "side": "buy",
                "type": "limit",
                "size": 1,
                "price": price,
                "post_only": True,
                "client_id": tag,
            }
        )
        if placed["status"] != "accepted":
            raise ApiError(503, "order_rejected", f"probe order rejected: {placed.get('reason')}")
        cancelled = await self._submit(
            {
                "kind": "cancel",
                "account": acct,
                "order_id": placed["order_id"],
                "client_id": f"c-{tag}",
            }
        )
        ms = round((time.perf_counter() - start) * 1000, 2)
        ok = cancelled["status"] == "accepted"
        return json_response(
            {
                "ok": ok,
                "order_id": placed["order_id"],
                "tx_hash": placed["transaction_hash"],
                "block": placed["block_number"],
                "cancel_status": cancelled["status"],
                "ms": ms,
            },
            200 if ok else 503,
        )


def main() -> None:
    run_main("ui-api", UiApiService, UiApiConfig.from_env)


if __name__ == "__main__":
    main()
