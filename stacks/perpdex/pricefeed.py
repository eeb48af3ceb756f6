"""The price source the oracle reads before it signs: every market's model price
(pricemodel.py) at a tick, as a USD decimal string, over JSON-RPC 2.0 at ``POST /``.
In the real world this is an exchange's market-data API (Compound's oracle read
Coinbase Pro's); the oracle reaches it over the link ``oracle -> pricefeed``, so a
fault on that link (a zero, a spike, a dropped or slow answer) reaches the oracle as a
real source's bad answer would, and the oracle signs it as it is.

    feed_getPrices {"tick": k}  ->  {"tick": k, "prices": {"BTC-USD-PERP": "90012.5", ...}}

`tick` is the reader's tick (0..MAX_TICK; positional `[k]` works too). A batch is
answered call by call (at most MAX_BATCH calls). Errors are JSON-RPC error objects:
-32700 not JSON (HTTP 400), -32600 not a call or an empty or oversized batch, -32601 no
such method, -32602 a bad tick. /health and /ready as every service.

Admin POST /admin/drifts {drifts: [{at_ms, duration_ms, market, pct}]}: the market moves
started so far (the oracle's `oracle.drift` hook hands them over before it moves its own
truth), replacing the previous list; kept in the data dir (pricefeed_drifts.json).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from l2chaos.stacks.perpdex.common.config import Common, ConfigError
from l2chaos.stacks.perpdex.common.http import ApiError, Service, json_response, read_json, run_main
from l2chaos.stacks.perpdex.common.inputs import InputError, loads_bounded
from l2chaos.stacks.perpdex.common.log import JsonLog
from l2chaos.stacks.perpdex.markets import MARKET_NAMES, MARKETS
from l2chaos.stacks.perpdex.pricemodel import ModelConfig, StartedMoves, parse_drift

__all__ = ["MAX_BATCH", "MAX_TICK", "METHOD", "PriceFeedConfig", "PriceFeedService"]

METHOD = "feed_getPrices"
MAX_BATCH = 16
# The model keeps every step of its walk (8 bytes a market): a tick this far out costs
# 48 MB and a few seconds once; 11 days of 500 ms ticks.
MAX_TICK = 2_000_000


class _CallError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _tick(params: Any) -> int:
    raw = params.get("tick") if isinstance(params, dict) else None
    if isinstance(params, list) and len(params) == 1:
        raw = params[0]
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= MAX_TICK:
        raise _CallError(-32602, f"params: expected {{tick}} with tick an integer 0..{MAX_TICK}")
    return raw


@dataclass(frozen=True)
class PriceFeedConfig:
    common: Common
    model: ModelConfig

    @classmethod
    def from_env(cls, common: Common, env: Mapping[str, str]) -> PriceFeedConfig:
        return cls(common, ModelConfig.from_env(env, common.seed))


class PriceFeedService(Service):
    def __init__(self, cfg: PriceFeedConfig, log: JsonLog) -> None:
        super().__init__(cfg.common, log)
        self.model = cfg.model.model()
        self.moves = StartedMoves(self.model, Path(cfg.common.data_dir) / "pricefeed_drifts.json")
        self.served = 0
        self.app.router.add_post("/", self.handle)
        self.app.router.add_post("/admin/drifts", self.admin_drifts)

    async def start(self) -> None:
        self.moves.load()

    def prices(self, tick: int) -> dict[str, Any]:
        return {
            "tick": tick,
            "prices": {m: MARKETS[m].price_to_usd(self.model.price(m, tick)) for m in MARKET_NAMES},
        }

    def _call(self, req: Any) -> dict[str, Any]:
        rid = req.get("id") if isinstance(req, dict) else None
        try:
            if not isinstance(req, dict) or req.get("jsonrpc") != "2.0":
                raise _CallError(-32600, "invalid request: expected {jsonrpc: '2.0', method, id}")
            if req.get("method") != METHOD:
                raise _CallError(-32601, f"method not found: {req.get('method')!r}; only {METHOD}")
            result = self.prices(_tick(req.get("params")))
        except _CallError as exc:
            return {"jsonrpc": "2.0", "id": rid, "error": {"code": exc.code, "message": str(exc)}}
        self.served += 1
        return {"jsonrpc": "2.0", "id": rid, "result": result}

    async def handle(self, request: web.Request) -> web.Response:
        try:
            body = loads_bounded(await request.read())
        except InputError as exc:
            error = {"code": -32700, "message": f"parse error: {exc}"}
            return json_response({"jsonrpc": "2.0", "id": None, "error": error}, 400)
        if not isinstance(body, list):
            return json_response(self._call(body))
        if not 0 < len(body) <= MAX_BATCH:
            error = {"code": -32600, "message": f"a batch holds 1 to {MAX_BATCH} calls"}
            return json_response({"jsonrpc": "2.0", "id": None, "error": error}, 400)
        return json_response([self._call(req) for req in body])

    async def admin_drifts(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        if not isinstance(body, dict) or "drifts" not in body:
            raise ApiError(400, "invalid", "expected {drifts: [...]}", "(body)")
        try:
            started = parse_drift(body.get("drifts"), "drifts")
        except ConfigError as exc:
            raise ApiError(400, "invalid", str(exc), "drifts") from None
        self.moves.save(started)
        self.log.warning("market moves set", moves=len(started))
        return json_response({"drifts": len(started)})


def main() -> None:
    run_main("pricefeed", PriceFeedService, PriceFeedConfig.from_env)


if __name__ == "__main__":
    main()
