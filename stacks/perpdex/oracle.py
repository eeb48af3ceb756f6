"""Index prices for every market: read from the price source (pricefeed.py) over the
link oracle -> pricefeed, signed with the oracle's key (common/signing.py) and pushed to
the sequencer, every tick.

Tick k is k x PERPDEX_ORACLE_INTERVAL_MS after the origin kept in the data dir (a
restarted oracle continues). Each tick the oracle asks the source for tick k
(`feed_getPrices`, JSON-RPC id k), reads every market's USD price (a decimal string or
number, rounded to the market's tick P) and pushes what it read, as it read it: like a
real oracle it checks nothing (a zero or a spike from the source is signed and pushed;
price validation is the sequencer's switch). A market the source did not answer with a
number is not pushed that tick. Without PERPDEX_PRICEFEED_URL the oracle is its own
source (the same model, in process: stacks that run no price source).

A market move timed against a run (hook POST /admin/chaos/drift {pct, duration_ms?,
markets?}, the `oracle.drift` fault) starts at the tick the call arrives (the model's
drifts, pricemodel.py): the oracle hands the started moves to its source first
(POST /admin/drifts on the pricefeed, over the same link), so the market the source
serves and the truth the oracle logs move together; a source it cannot reach fails the
hook (502) and nothing moves. Started moves are kept in the data dir
(oracle_drifts.json; the source keeps its own copy), so a restart continues them.

Chaos hook POST /admin/chaos/oracle {mode: normal|stale|zero|spike|lag, markets?,
factor? (0..MAX_FACTOR), lag_ms? (0..MAX_LAG_MS)}: the oracle's own faults, on top of
what the source said. stale publishes nothing, zero publishes 0, spike the source's
price x factor, lag the source's price of lag_ms ago (asked for in the same batch) with
its old observed_ts.

The reference log (data dir oracle_reference.jsonl, GET /admin/reference) has one line
per tick and market: model_price, the true price (the seeded model the source serves,
computed here from the same settings, never read over the link, so it stays the truth
when the source or the link lies), source_price (what the source answered; null when
the read failed or gave no number, then source_error says why), published_price (null
when nothing was delivered), observed_ts_ns, mode, push_error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from decimal import ROUND_HALF_EVEN
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from l2chaos.stacks.perpdex.common.config import Common, env_url
from l2chaos.stacks.perpdex.common.http import (
    ApiError,
    Service,
    dumps,
    json_response,
    read_json,
    run_main,
)
from l2chaos.stacks.perpdex.common.inputs import MAX_INT, InputError, parse_decimal
from l2chaos.stacks.perpdex.common.keys import KeyRing
from l2chaos.stacks.perpdex.common.log import JsonLog
from l2chaos.stacks.perpdex.common.signing import sign
from l2chaos.stacks.perpdex.markets import MARKET_NAMES, MARKETS
from l2chaos.stacks.perpdex.pricefeed import METHOD
from l2chaos.stacks.perpdex.pricemodel import Drift, ModelConfig, StartedMoves

__all__ = ["OracleService", "SourceRead", "source_price"]

MODES = ("normal", "stale", "zero", "spike", "lag")
MAX_FACTOR = 1_000_000  # a spike of x1e6 still gives prices far below 2**62
MAX_LAG_MS = 86_400_000  # a day
MAX_DRIFT_MS = 86_400_000


@dataclass
class MarketMode:
    mode: str = "normal"
    factor: float = 1.0
    lag_ms: int = 0


@dataclass(frozen=True)
class OracleConfig:
    common: Common
    sequencer_url: str
    pricefeed_url: str | None  # None: the oracle is its own source (the model in process)
    model: ModelConfig

    @property
    def interval_ms(self) -> int:
        return self.model.interval_ms

    @classmethod
    def from_env(cls, common: Common, env: Mapping[str, str]) -> OracleConfig:
        return cls(
            common=common,
            sequencer_url=env_url(env, "PERPDEX_SEQUENCER_URL"),
            pricefeed_url=(
                env_url(env, "PERPDEX_PRICEFEED_URL") if env.get("PERPDEX_PRICEFEED_URL") else None
            ),
            model=ModelConfig.from_env(env, common.seed),
        )


def source_price(market: str, raw: Any) -> int:
    """A source's USD price (decimal string or number) as the market's integer P,
    rounded half-even to the tick; InputError when it is not a number below 2**62."""
    usd = parse_decimal(raw, f"{market} price")
    p = int((usd * MARKETS[market].price_scale).to_integral_value(ROUND_HALF_EVEN))
    if abs(p) >= MAX_INT:
        raise InputError(f"{market} price {raw!r} is out of range")
    return p


@dataclass
class SourceRead:
    """What one read of the source gave: prices (P) per tick and market, and why the
    rest is missing."""

    prices: dict[int, dict[str, int]]
    errors: dict[int, dict[str, str]]
    error: str | None = None  # the read as a whole failed

    def price(self, tick: int, market: str) -> int | None:
        return self.prices.get(tick, {}).get(market)

    def why(self, tick: int, market: str) -> str | None:
        return self.error or self.errors.get(tick, {}).get(market)

    @classmethod
    def failed(cls, error: str) -> SourceRead:
        return cls({}, {}, error)

    @classmethod
    def parse(cls, ticks: list[int], doc: Any) -> SourceRead:
        """The JSON-RPC answer (one call, or a batch) for `ticks`."""
        read = cls({}, {})
        answers = {
            a["id"]: a
            for a in (doc if isinstance(doc, list) else [doc])
            if isinstance(a, dict) and isinstance(a.get("id"), int)
        }
        for t in ticks:
            a = answers.get(t, {})
            result = a.get("result")
            prices = result.get("prices") if isinstance(result, dict) else None
            if not isinstance(prices, dict):
                reason = f"no prices for tick {t}: {dumps(a.get('error', a))[:200]}"
                read.errors[t] = dict.fromkeys(MARKET_NAMES, reason)
                continue
            for m in MARKET_NAMES:
                try:
                    read.prices.setdefault(t, {})[m] = source_price(m, prices.get(m))
                except InputError as exc:
                    read.errors.setdefault(t, {})[m] = str(exc)
        return read


class OracleService(Service):
    def __init__(self, cfg: OracleConfig, log: JsonLog) -> None:
        super().__init__(cfg.common, log)
        self.cfg = cfg
        self.model = cfg.model.model()  # the truth, for the reference log only
        self.modes = {m: MarketMode() for m in MARKET_NAMES}
        self.signing_key = KeyRing(cfg.common.seed, cfg.common.admin_token).signing_key("oracle")
        self.data_dir = Path(cfg.common.data_dir)
        self.ref_path = self.data_dir / "oracle_reference.jsonl"
        self.moves = StartedMoves(self.model, self.data_dir / "oracle_drifts.json")
        self.origin_ns = 0
        self.tick = -1
        self.pushed = 0
        self._task: asyncio.Task[None] | None = None
        self._ref: Any = None
        self.http: aiohttp.ClientSession | None = None
        self.source: aiohttp.ClientSession | None = None
        # observed_ts_ns of recent ticks, for lag mode
        self._tick_ts: dict[int, int] = {}
        self.app.router.add_post("/admin/chaos/oracle", self.admin_mode)
        self.app.router.add_post("/admin/chaos/drift", self.admin_drift)
        self.app.router.add_get("/admin/reference", self.admin_reference)
        self.app.router.add_get("/prices", self.get_prices)

    def ready(self) -> tuple[bool, str]:
        return (self._task is not None and self.tick >= 0, f"tick {self.tick}")

    def _origin(self) -> int:
        """The time of tick 0, kept in the data dir so a restart continues the path."""
        path = self.data_dir / "oracle_origin.json"
        try:
            return int(json.loads(path.read_text())["origin_ns"])
        except (OSError, ValueError, KeyError, TypeError):
            origin = time.time_ns()
            self.data_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"origin_ns": origin, "interval_ms": self.cfg.interval_ms}))
            os.replace(tmp, path)
            return origin

    async def start(self) -> None:
        self.origin_ns = self._origin()
        self.moves.load()
        self._ref = open(self.ref_path, "a", buffering=1)  # noqa: SIM115 - closed in stop
        timeout = aiohttp.ClientTimeout(total=max(1.0, self.cfg.interval_ms / 1000), connect=1)
        self.http = aiohttp.ClientSession(
            base_url=self.cfg.sequencer_url, timeout=timeout, json_serialize=dumps
        )
        if self.cfg.pricefeed_url is not None:
            self.source = aiohttp.ClientSession(
                base_url=self.cfg.pricefeed_url, timeout=timeout, json_serialize=dumps
            )
        self._task = asyncio.create_task(self._run())
        self.log.info("oracle started", origin_ns=self.origin_ns, interval_ms=self.cfg.interval_ms)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for session in (self.http, self.source):
            if session is not None:
                await session.close()
        if self._ref is not None:
            self._ref.close()

    def _k_now(self) -> int:
        return (time.time_ns() - self.origin_ns) // (self.cfg.interval_ms * 1_000_000)

    async def _run(self) -> None:
        interval_ns = self.cfg.interval_ms * 1_000_000
        k = max(0, self._k_now())
        while True:
            due = self.origin_ns + k * interval_ns
            delay = (due - time.time_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            k_now = self._k_now()
            if k_now > k + 1:
                k = k_now  # we fell behind (paused, or a slow push): skip to the present
            await self._tick(k)
            k += 1

    def _lag_tick(self, k: int, mm: MarketMode) -> int:
        back = max(0, -(-mm.lag_ms * 1_000_000 // (self.cfg.interval_ms * 1_000_000)))
        return max(0, k - back)

    def ticks_to_read(self, k: int) -> list[int]:
        """Tick k, and the older ticks lagging markets publish."""
        lagged = {self._lag_tick(k, mm) for mm in self.modes.values() if mm.mode == "lag"}
        return [k, *sorted(lagged - {k})]

    async def read_source(self, ticks: list[int]) -> SourceRead:
        """One call for tick k (id k), a batch when lagging markets need older ticks."""
        if self.source is None:  # no source configured: the model in process
            prices = {t: {m: self.model.price(m, t) for m in MARKET_NAMES} for t in ticks}
            return SourceRead(prices, {})
        calls = [
            {"jsonrpc": "2.0", "id": t, "method": METHOD, "params": {"tick": t}} for t in ticks
        ]
        try:
            async with self.source.post("/", json=calls[0] if len(calls) == 1 else calls) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            return SourceRead.failed(repr(exc))
        if status != 200:
            return SourceRead.failed(f"status {status}")
        try:
            return SourceRead.parse(ticks, json.loads(raw))
        except ValueError:
            return SourceRead.failed(f"not JSON: {raw[:200]!r}")

    def quotes(self, k: int, now_ns: int, read: SourceRead) -> list[dict[str, Any]]:
        """Per market at tick k: the model (true) price, the source's, the price to
        publish (None: nothing), observed_ts_ns and mode."""
        out = []
        for m in MARKET_NAMES:
            mm = self.modes[m]
            source = read.price(k, m)
            observed = now_ns
            publish = source
            if mm.mode == "stale":
                publish = None
            elif mm.mode == "zero":
                publish = 0
            elif mm.mode == "spike":
                publish = None if source is None else max(0, round(source * mm.factor))
            elif mm.mode == "lag":
                j = self._lag_tick(k, mm)
                publish = read.price(j, m)
                observed = self._tick_ts.get(
                    j, self.origin_ns + j * self.cfg.interval_ms * 1_000_000
                )
            out.append(
                {
                    "market": m,
                    "model_price": self.model.price(m, k),
                    "source_price": source,
                    "source_error": read.why(k, m) if source is None else None,
                    "publish": publish,
                    "observed_ts_ns": observed,
                    "mode": mm.mode,
                }
            )
        return out

    async def push(self, k: int, quotes: list[dict[str, Any]]) -> tuple[bool, str | None]:
        """Sign and push the prices there are; (delivered, error)."""
        prices = [
            {"market": q["market"], "price": q["publish"], "observed_ts_ns": q["observed_ts_ns"]}
            for q in quotes
            if q["publish"] is not None
        ]
        if not prices:
            return False, None
        assert self.http is not None
        update = {"kind": "price", "prices": prices, "nonce": k}
        try:
            async with self.http.post(
                "/oracle/prices", json=sign(self.signing_key, update)
            ) as resp:
                await resp.read()
                if resp.status == 202:
                    return True, None
                return False, f"status {resp.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return False, repr(exc)

    async def _tick(self, k: int) -> None:
        now = time.time_ns()
        self.tick = k
        self._tick_ts[k] = now
        self._tick_ts.pop(k - 100_000, None)
        quotes = self.quotes(k, now, await self.read_source(self.ticks_to_read(k)))
        delivered, error = await self.push(k, quotes)
        if delivered:
            self.pushed += 1
        lines = []
        for q in quotes:
            publish = q.pop("publish")
            q["published_price"] = publish if delivered else None
            lines.append(dumps({"host_ts_ns": now, "tick": k, **q, "push_error": error}))
        self._ref.write("\n".join(lines) + "\n")
        if k % 20 == 0:
            for why in {error, *(q["source_error"] for q in quotes)} - {None}:
                self.log.warning("price tick incomplete", tick=k, error=why)

    # ------------------------------------------------------------------ API

    async def admin_mode(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise ApiError(400, "invalid", "expected {mode, markets?, factor?, lag_ms?}", "(body)")
        mode = body.get("mode")
        if mode not in MODES:
            raise ApiError(400, "invalid", f"mode must be one of {', '.join(MODES)}", "mode")
        markets = _markets(body)
        factor = body.get("factor", 1.0)
        lag_ms = body.get("lag_ms", 0)
        if (
            isinstance(factor, bool)
            or not isinstance(factor, (int, float))
            or not 0 <= factor <= MAX_FACTOR
        ):
            raise ApiError(
                400, "invalid", f"factor must be a number from 0 to {MAX_FACTOR}", "factor"
            )
        if isinstance(lag_ms, bool) or not isinstance(lag_ms, int) or not 0 <= lag_ms <= MAX_LAG_MS:
            raise ApiError(
                400, "invalid", f"lag_ms must be an integer from 0 to {MAX_LAG_MS}", "lag_ms"
            )
        if mode == "spike" and "factor" not in body:
            raise ApiError(400, "invalid", "spike needs a factor", "factor")
        if mode == "lag" and "lag_ms" not in body:
            raise ApiError(400, "invalid", "lag needs lag_ms", "lag_ms")
        for m in markets:
            self.modes[m] = MarketMode(mode, float(factor), lag_ms)
        self.log.warning(
            "oracle mode set", mode=mode, markets=markets, factor=factor, lag_ms=lag_ms
        )
        return json_response(
            {"modes": {m: self.modes[m].mode for m in MARKET_NAMES}, "tick": self.tick}
        )

    async def admin_drift(self, request: web.Request) -> web.Response:
        """Start a market move now: `pct` percent over `duration_ms`, kept afterwards."""
        body = await read_json(request)
        if not isinstance(body, dict):
            raise ApiError(400, "invalid", "expected {pct, duration_ms?, markets?}", "(body)")
        markets = _markets(body)
        pct, duration_ms = body.get("pct"), body.get("duration_ms", 0)
        if isinstance(pct, bool) or not isinstance(pct, (int, float)) or not -100 < pct <= 1000:
            raise ApiError(400, "invalid", "pct must be a number in (-100, 1000]", "pct")
        if (
            isinstance(duration_ms, bool)
            or not isinstance(duration_ms, int)
            or not 0 <= duration_ms <= MAX_DRIFT_MS
        ):
            raise ApiError(
                400, "invalid", f"duration_ms must be an integer from 0 to {MAX_DRIFT_MS}",
                "duration_ms",
            )  # fmt: skip
        at_ms = (time.time_ns() - self.origin_ns) // 1_000_000
        started = [
            *self.moves.started(),
            *(Drift(at_ms, duration_ms, m, float(pct)) for m in markets),
        ]
        await self._move_source(started)
        self.moves.save(started)
        self.log.warning("market move started", markets=markets, pct=pct, at_ms=at_ms,
                         duration_ms=duration_ms)  # fmt: skip
        return json_response({"tick": self.tick, "at_ms": at_ms, "markets": markets})

    async def _move_source(self, started: list[Drift]) -> None:
        """The source's market moves first: the truth never moves without it."""
        if self.source is None:
            return
        token = self.cfg.common.admin_token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body = {"drifts": [asdict(d) for d in started]}
        try:
            async with self.source.post("/admin/drifts", json=body, headers=headers) as resp:
                text = await resp.text()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ApiError(
                502, "source_unreachable", f"the price source: {exc!r}", "(source)"
            ) from None
        if status != 200:
            raise ApiError(
                502,
                "source_refused",
                f"the price source answered {status}: {text[:200]}",
                "(source)",
            )

    async def admin_reference(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        if self._ref is not None:
            self._ref.flush()
        with contextlib.suppress(FileNotFoundError), open(self.ref_path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                await resp.write(chunk)
        await resp.write_eof()
        return resp

    async def get_prices(self, request: web.Request) -> web.Response:
        k = max(self.tick, 0)
        return json_response(
            {
                "tick": k,
                "prices": {m: self.model.price(m, k) for m in MARKET_NAMES},
                "modes": {m: self.modes[m].mode for m in MARKET_NAMES},
            }
        )


def _markets(body: dict[str, Any]) -> list[str]:
    """The body's `markets` (every market when absent or empty), validated."""
    markets = body.get("markets") or list(MARKET_NAMES)
    if not isinstance(markets, list) or any(
        not isinstance(m, str) or m not in MARKETS for m in markets
    ):
        raise ApiError(400, "invalid", f"markets must be a list of {', '.join(MARKETS)}", "markets")
    return markets


def main() -> None:
    run_main("oracle", OracleService, OracleConfig.from_env)


if __name__ == "__main__":
    main()
