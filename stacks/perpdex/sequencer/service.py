"""The sequencer's HTTP API.

POST /tx             one signed transaction (common/signing.py) -> its receipt once the
                     block holding it is committed (200; the receipt's status says
                     accepted/rejected), 400 malformed, 403 not signed by its signer,
                     503 mempool full (with Retry-After; the bound is tighter with
                     admission_control), 504 not committed within PERPDEX_TX_TIMEOUT_MS
POST /txs            a list of transactions -> a list of receipts (or errors; a refusal
                     for load carries `retry_after_s`)
POST /oracle/prices  {"prices": [{market, price, observed_ts_ns}], "nonce", "signature"}
                     signed by the oracle -> 202
GET  /state/head | /state/markets | /state/accounts/{id} | /state/orders/{id}
     | /state/receipts/{hash}     current (soft) state, straight from memory
admin: POST /admin/chaos/mode {mode}, /admin/chaos/rollback {to_block|blocks_back},
       /admin/chaos/clock {offset_ms, |offset_ms| <= MAX_CLOCK_OFFSET_MS}; GET /admin/state

Limits: bodies up to MAX_BODY bytes (413 beyond), at most MAX_TXS transactions per
/txs call and MAX_PRICES quotes per price update (400 beyond).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiohttp import web
from l2chaos.stacks.perpdex.common.http import ApiError, Service, json_response, read_json
from l2chaos.stacks.perpdex.common.inputs import MAX_INT, InputError, parse_int_text
from l2chaos.stacks.perpdex.common.keys import KeyRing
from l2chaos.stacks.perpdex.common.log import JsonLog
from l2chaos.stacks.perpdex.common.signing import SignatureError, Verifier
from l2chaos.stacks.perpdex.engine.txs import MODES, Tx, TxError, parse_tx
from l2chaos.stacks.perpdex.markets import MARKET_NAMES, MARKETS
from l2chaos.stacks.perpdex.sequencer.config import SequencerConfig
from l2chaos.stacks.perpdex.sequencer.node import MempoolFull, Node, RollbackRefused

__all__ = ["MAX_BODY", "MAX_CLOCK_OFFSET_MS", "MAX_PRICES", "MAX_TXS", "SequencerService"]

MAX_BODY = 2 * 1024 * 1024  # bytes: a /txs call of MAX_TXS signed transactions fits
MAX_TXS = 1000
MAX_PRICES = 64
MAX_CLOCK_OFFSET_MS = 365 * 86_400_000  # a year either way


class SequencerService(Service):
    max_body = MAX_BODY

    def __init__(self, cfg: SequencerConfig, log: JsonLog) -> None:
        super().__init__(cfg.common, log)
        self.cfg = cfg
        self.node = Node(cfg, log)
        self.verifier = Verifier(KeyRing(cfg.common.seed, cfg.common.admin_token))
        r = self.app.router
        r.add_post("/tx", self.post_tx)
        r.add_post("/txs", self.post_txs)
        r.add_post("/oracle/prices", self.post_prices)
        r.add_get("/state/head", self.get_head)
        r.add_get("/state/markets", self.get_markets)
        r.add_get("/state/accounts/{account}", self.get_account)
        r.add_get("/state/orders/{order_id}", self.get_order)
        r.add_get("/state/receipts/{hash}", self.get_receipt)
        r.add_post("/admin/chaos/mode", self.admin_mode)
        r.add_post("/admin/chaos/rollback", self.admin_rollback)
        r.add_post("/admin/chaos/clock", self.admin_clock)
        r.add_get("/admin/state", self.admin_state)

    def ready(self) -> tuple[bool, str]:
        return self.node.ready()

    async def start(self) -> None:
        await self.node.start()

    async def stop(self) -> None:
        await self.node.stop()

    # ------------------------------------------------------------------ transactions

    def _parse(self, obj: Any) -> Tx:
        try:
            tx = parse_tx(obj, self.cfg.layout)
        except TxError as exc:
            raise ApiError(400, "invalid_tx", exc.message, exc.field) from None
        if tx.kind in ("price", "mode"):
            raise ApiError(
                400, "invalid_tx", f"{tx.kind} transactions have their own route", "kind"
            )
        self._verify(obj)
        return tx

    def _verify(self, obj: dict[str, Any]) -> None:
        try:
            self.verifier.verify(obj)
        except SignatureError as exc:
            raise ApiError(403, "bad_signature", exc.message, exc.field) from None

    def _submit(self, tx: Tx) -> asyncio.Future[dict[str, Any]]:
        if not self.node.started:
            raise ApiError(503, "unavailable", "the sequencer is starting")
        try:
            return self.node.submit(tx)
        except MempoolFull as exc:
            raise ApiError(
                503, "mempool_full", f"the mempool is full: {exc}", retry_after=exc.retry_after
            ) from None

    async def _wait(self, tx: Tx, fut: asyncio.Future[dict[str, Any]]) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(asyncio.shield(fut), self.cfg.tx_timeout_ms / 1000)
        except TimeoutError:
            raise ApiError(
                504,
                "timeout",
                f"transaction {tx.hash} is not committed yet (block production may be stalled)",
            ) from None
        except ConnectionError as exc:
            raise ApiError(503, "unavailable", str(exc)) from None

    async def post_tx(self, request: web.Request) -> web.Response:
        tx = self._parse(await read_json(request))
        return json_response(await self._wait(tx, self._submit(tx)))

    async def post_txs(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        if not isinstance(body, list) or not body:
            raise ApiError(400, "invalid_tx", "expected a non-empty JSON list", "(body)")
        if len(body) > MAX_TXS:
            raise ApiError(
                400, "too_many", f"{len(body)} transactions; at most {MAX_TXS} per call", "(body)"
            )
        out: list[Any] = [None] * len(body)
        waits: list[tuple[int, Tx, asyncio.Future[dict[str, Any]]]] = []
        for i, obj in enumerate(body):
            try:
                tx = self._parse(obj)
                waits.append((i, tx, self._submit(tx)))
            except ApiError as exc:
                err: dict[str, Any] = {"code": exc.code, "message": exc.message, "field": exc.field}
                if exc.retry_after is not None:
                    err["retry_after_s"] = exc.retry_after
                out[i] = {"error": err, "status_code": exc.status}
        for i, tx, fut in waits:
            try:
                out[i] = await self._wait(tx, fut)
            except ApiError as exc:
                out[i] = {
                    "error": {"code": exc.code, "message": exc.message, "field": exc.field},
                    "status_code": exc.status,
                    "transaction_hash": tx.hash,
                }
        return json_response(out)

    async def post_prices(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise ApiError(
                400, "invalid_tx", "expected {prices: [...], nonce, signature}", "(body)"
            )
        prices = body.get("prices")
        if isinstance(prices, list) and len(prices) > MAX_PRICES:
            raise ApiError(
                400, "too_many", f"{len(prices)} quotes; at most {MAX_PRICES} per update", "prices"
            )
        obj = {**body, "kind": "price"}
        try:
            tx = parse_tx(obj, self.cfg.layout)
        except TxError as exc:
            raise ApiError(400, "invalid_tx", exc.message, exc.field) from None
        self._verify(obj)
        fut = self._submit(tx)
        fut.add_done_callback(_consume)
        return json_response({"transaction_hash": tx.hash, "queued": len(tx.prices)}, 202)

    # ------------------------------------------------------------------ reads

    async def get_head(self, request: web.Request) -> web.Response:
        n = self.node
        return json_response(
            {
                **n.head,
                "mode": n.ex.mode,
                "mempool": len(n.mempool),
                "market_ready": n.market_ready(),
                "cache_loaded": n.cache.loaded,
                "stalled": n.stalled_since is not None,
            }
        )

    async def get_markets(self, request: web.Request) -> web.Response:
        n = self.node
        view = n.cache.view()
        out = []
        for m in MARKET_NAMES:
            d = view[m]
            book = n.ex.books[m]
            out.append(
                {
                    **d.to_json(),
                    **MARKETS[m].header(),
                    "best_bid": book.best_bid(),
                    "best_ask": book.best_ask(),
                    "depth": book.depth(5),
                }
            )
        return json_response({"mode": n.ex.mode, "markets": out})

    async def get_account(self, request: web.Request) -> web.Response:
        aid = _int_param(request, "account", minimum=-MAX_INT + 1)
        return json_response(self.node.ex.account_view(aid))

    async def get_order(self, request: web.Request) -> web.Response:
        oid = _int_param(request, "order_id")
        n = self.node
        o = n.ex.orders.get(oid)
        if o is not None:
            return json_response(o.to_json())
        done = n.recent_orders.get(oid)
        if done is not None:
            return json_response(done)
        raise ApiError(404, "unknown_order", f"order {oid} is not open nor recent", "order_id")

    async def get_receipt(self, request: web.Request) -> web.Response:
        h = request.match_info["hash"]
        r = self.node.receipts.get(h)
        if r is None:
            raise ApiError(404, "unknown_transaction", f"no recent receipt for {h}", "hash")
        return json_response(r)

    # ------------------------------------------------------------------ admin

    async def admin_mode(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        if not isinstance(body, dict) or body.get("mode") not in MODES:
            raise ApiError(400, "invalid", f"mode must be one of {', '.join(MODES)}", "mode")
        if body.get("markets"):
            raise ApiError(400, "invalid", "per-market modes are not supported", "markets")
        tx = Tx(kind="mode", mode=body["mode"], nonce=uuid.uuid4().hex)
        tx.hash = tx.compute_hash()
        receipt = await self._wait(tx, self._submit(tx))
        return json_response({**receipt, "mode": self.node.ex.mode})

    async def admin_rollback(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise ApiError(400, "invalid", "expected {to_block} or {blocks_back}", "(body)")
        for key in ("to_block", "blocks_back"):
            v = body.get(key)
            if key in body and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise ApiError(400, "invalid", f"{key} must be an integer >= 0", key)
        try:
            result = await self.node.rollback(body)
        except RollbackRefused as exc:
            raise ApiError(409, "refused", str(exc)) from None
        except LookupError as exc:
            raise ApiError(409, "refused", str(exc)) from None
        except (OSError, TimeoutError, ConnectionError) as exc:
            raise ApiError(503, "unavailable", f"database unavailable: {exc!r}") from None
        return json_response(result)

    async def admin_clock(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        off = body.get("offset_ms") if isinstance(body, dict) else None
        if isinstance(off, bool) or not isinstance(off, int) or abs(off) > MAX_CLOCK_OFFSET_MS:
            raise ApiError(
                400,
                "invalid",
                f"offset_ms must be an integer from -{MAX_CLOCK_OFFSET_MS} to "
                f"{MAX_CLOCK_OFFSET_MS} (a year)",
                "offset_ms",
            )
        self.node.clock_offset_ns = off * 1_000_000
        self.log.warning("chain clock offset set", offset_ms=off)
        return json_response({"offset_ms": off})

    async def admin_state(self, request: web.Request) -> web.Response:
        n = self.node
        return json_response(
            {
                "head": n.head,
                "mode": n.ex.mode,
                "cache_loaded": n.cache.loaded,
                "cache_epoch": n.cache.epoch,
                "market_ready": n.market_ready(),
                "stage": None if n._stage is None else n._stage[0],
                "mempool": len(n.mempool),
                "clock_offset_ms": n.clock_offset_ns // 1_000_000,
                "stats": n.stats,
                "switches": self.cfg.guards.switches(),
            }
        )


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


def _int_param(request: web.Request, name: str, minimum: int = 1) -> int:
    try:
        return parse_int_text(request.match_info[name], name, minimum=minimum)
    except InputError as exc:
        raise ApiError(400, "invalid", str(exc), name) from None
