"""Index prices for every market, pushed to the sequencer every tick, signed with the
oracle's key (common/signing.py).

The model: a seeded random walk per market (log-normal steps of PERPDEX_ORACLE_VOL_BPS
per tick, rounded to the market's tick P), plus an optional scripted drift list
PERPDEX_ORACLE_DRIFT = [{"at_ms", "duration_ms", "market", "pct"}] (a linear move of
`pct` percent over the window, kept afterwards; at_ms counts from the oracle's start),
or a recorded series PERPDEX_ORACLE_CSV (columns offset_ms,<market>,... in USD; the
last row at or before the tick applies). The price at tick k is a pure function of the
seed (or file), the drifts and k, and k counts from the origin kept in the data dir,
so a restarted oracle continues the same path.

A move timed against a run (hook POST /admin/chaos/drift {pct, duration_ms?,
markets?}, the `oracle.drift` fault) starts at the tick the call arrives: a scenario
times it from the run's t0 or a trigger, never from when the oracle happened to start
(seconds earlier on a loaded machine). Started moves are kept in the data dir
(oracle_drifts.json), so a restarted oracle continues them.

Chaos hook POST /admin/chaos/oracle {mode: normal|stale|zero|spike|lag, markets?,
factor? (0..MAX_FACTOR), lag_ms? (0..MAX_LAG_MS)}: stale publishes nothing, zero publishes 0, spike publishes the
price x factor, lag publishes the model price of lag_ms ago with its old observed_ts.
The model keeps running in every mode. The reference log (data dir
oracle_reference.jsonl, GET /admin/reference) has one line per tick and market:
model_price, published_price (null when nothing was delivered), observed_ts_ns, mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import math
import os
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from l2chaos.stacks.perpdex.common.config import (
    Common,
    ConfigError,
    env_int,
    env_json,
    env_str,
    env_url,
)
from l2chaos.stacks.perpdex.common.http import (
    ApiError,
    Service,
    dumps,
    json_response,
    read_json,
    run_main,
)
from l2chaos.stacks.perpdex.common.keys import KeyRing
from l2chaos.stacks.perpdex.common.log import JsonLog
from l2chaos.stacks.perpdex.common.signing import sign
from l2chaos.stacks.perpdex.markets import MARKET_NAMES, MARKETS

__all__ = ["Drift", "OracleService", "PriceModel"]

MODES = ("normal", "stale", "zero", "spike", "lag")
MAX_FACTOR = 1_000_000  # a spike of x1e6 still gives prices far below 2**62
MAX_LAG_MS = 86_400_000  # a day
MAX_DRIFT_MS = 86_400_000


@dataclass(frozen=True)
class Drift:
    at_ms: int
    duration_ms: int
    market: str
    pct: float

    def factor(self, t_ms: int) -> float:
        if t_ms <= self.at_ms:
            return 1.0
        done = 1.0 if self.duration_ms <= 0 else min(1.0, (t_ms - self.at_ms) / self.duration_ms)
        return 1.0 + self.pct / 100.0 * done


def parse_drift(raw: Any, name: str = "PERPDEX_ORACLE_DRIFT") -> list[Drift]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError(name, "expected a JSON list of {at_ms, duration_ms, market, pct}")
    out = []
    for i, d in enumerate(raw):
        if not isinstance(d, dict):
            raise ConfigError(name, f"[{i}] expected an object")
        if d.get("market") not in MARKETS:
            raise ConfigError(name, f"[{i}].market must be one of {', '.join(MARKETS)}")
        try:
            out.append(
                Drift(
                    int(d.get("at_ms", 0)),
                    int(d.get("duration_ms", 0)),
                    d["market"],
                    float(d["pct"]),
                )
            )
        except (KeyError, TypeError, ValueError):
            raise ConfigError(name, f"[{i}] needs numeric at_ms, duration_ms and pct") from None
        if out[-1].pct <= -100:
            raise ConfigError(name, f"[{i}].pct must be > -100")
    return out


def load_csv(path: str) -> list[tuple[int, dict[str, float]]]:
    rows: list[tuple[int, dict[str, float]]] = []
    try:
        with open(path, newline="") as fh:
            for i, rec in enumerate(csv.DictReader(fh)):
                try:
                    rows.append(
                        (
                            int(rec["offset_ms"]),
                            {m: float(rec[m]) for m in MARKET_NAMES if rec.get(m)},
                        )
                    )
                except (KeyError, ValueError):
                    raise ConfigError(
                        "PERPDEX_ORACLE_CSV", f"{path} row {i + 2}: bad offset_ms or price"
                    ) from None
    except OSError as exc:
        raise ConfigError("PERPDEX_ORACLE_CSV", f"cannot read {path}: {exc}") from None
    if not rows:
        raise ConfigError("PERPDEX_ORACLE_CSV", f"{path} has no rows")
    return sorted(rows, key=lambda r: r[0])


class PriceModel:
    """Model price of each market at tick k (integer P), a pure function of (seed, k)."""

    def __init__(
        self,
        seed: int,
        interval_ms: int,
        vol_bps: float,
        drifts: list[Drift] | None = None,
        series: list[tuple[int, dict[str, float]]] | None = None,
    ) -> None:
        self.interval_ms = interval_ms
        self.sigma = vol_bps / 10_000
        self.drifts = drifts or []
        self.series = series
        self._rngs = {m: random.Random(f"{seed}:{m}:oracle") for m in MARKET_NAMES}
        start_rng = random.Random(f"{seed}:oracle-start")
        self._log = {
            m: [math.log(float(MARKETS[m].ref_usd)) + start_rng.uniform(-0.02, 0.02)]
            for m in MARKET_NAMES
        }

    def _walk(self, market: str, k: int) -> float:
        path = self._log[market]
        rng = self._rngs[market]
        while len(path) <= k:
            path.append(path[-1] + rng.gauss(0.0, self.sigma))
        return path[k]

    def usd(self, market: str, k: int) -> float:
        t_ms = k * self.interval_ms
        if self.series is not None:
            price = None
            for off, prices in self.series:
                if off > t_ms:
                    break
                if market in prices:
                    price = prices[market]
            base = price if price is not None else float(MARKETS[market].ref_usd)
        else:
            base = math.exp(self._walk(market, k))
        for d in self.drifts:
            if d.market == market:
                base *= d.factor(t_ms)
        return base

    def price(self, market: str, k: int) -> int:
        return max(1, round(self.usd(market, k) * MARKETS[market].price_scale))


@dataclass
class MarketMode:
    mode: str = "normal"
    factor: float = 1.0
    lag_ms: int = 0


@dataclass(frozen=True)
class OracleConfig:
    common: Common
    sequencer_url: str
    interval_ms: int
    vol_bps: float
    drifts: list[Drift] = field(default_factory=list)
    csv_path: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OracleConfig:
        vol_raw = env.get("PERPDEX_ORACLE_VOL_BPS", "5")
        try:
            vol = float(vol_raw)
        except ValueError:
            raise ConfigError(
                "PERPDEX_ORACLE_VOL_BPS", f"expected a number, got {vol_raw!r}"
            ) from None
        if not 0 <= vol <= 2000:
            raise ConfigError("PERPDEX_ORACLE_VOL_BPS", "expected 0..2000 (bps per tick)")
        csv_path = env.get("PERPDEX_ORACLE_CSV") or None
        return cls(
            common=Common.from_env("oracle", env),
            sequencer_url=env_url(env, "PERPDEX_SEQUENCER_URL"),
            interval_ms=env_int(env, "PERPDEX_ORACLE_INTERVAL_MS", 500, min=10, max=60_000),
            vol_bps=vol,
            drifts=parse_drift(env_json(env, "PERPDEX_ORACLE_DRIFT", None)),
            csv_path=env_str(env, "PERPDEX_ORACLE_CSV", csv_path) if csv_path else None,
        )


class OracleService(Service):
    def __init__(self, cfg: OracleConfig, log: JsonLog) -> None:
        super().__init__(cfg.common, log)
        self.cfg = cfg
        series = load_csv(cfg.csv_path) if cfg.csv_path else None
        self.model = PriceModel(cfg.common.seed, cfg.interval_ms, cfg.vol_bps, cfg.drifts, series)
        self.modes = {m: MarketMode() for m in MARKET_NAMES}
        self.signing_key = KeyRing(cfg.common.seed, cfg.common.admin_token).signing_key("oracle")
        self.data_dir = Path(cfg.common.data_dir)
        self.ref_path = self.data_dir / "oracle_reference.jsonl"
        self.drifts_path = self.data_dir / "oracle_drifts.json"
        self.origin_ns = 0
        self.tick = -1
        self.pushed = 0
        self._task: asyncio.Task[None] | None = None
        self._ref: Any = None
        self.http: aiohttp.ClientSession | None = None
        # observed_ts_ns of recent ticks, for lag mode
        self._tick_ts: dict[int, int] = {}
        self.app.router.add_post("/admin/chaos/oracle", self.admin_mode)
        self.app.router.add_post("/admin/chaos/drift", self.admin_drift)
        self.app.router.add_get("/admin/reference", self.admin_reference)
        self.app.router.add_get("/prices", self.get_prices)

    @classmethod
    def from_env(cls, env: Mapping[str, str], log: JsonLog) -> OracleService:
        return cls(OracleConfig.from_env(env), log)

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

    def _load_drifts(self) -> None:
        """Moves started through the hook before a restart, on top of the configured ones."""
        try:
            raw = json.loads(self.drifts_path.read_text())
        except (OSError, ValueError):
            return
        self.model.drifts = [*self.cfg.drifts, *parse_drift(raw, str(self.drifts_path))]

    def _save_drifts(self, started: list[Drift]) -> None:
        tmp = self.drifts_path.with_suffix(".tmp")
        tmp.write_text(json.dumps([d.__dict__ for d in started]))
        os.replace(tmp, self.drifts_path)

    async def start(self) -> None:
        self.origin_ns = self._origin()
        self._load_drifts()
        self._ref = open(self.ref_path, "a", buffering=1)  # noqa: SIM115 - closed in stop
        timeout = aiohttp.ClientTimeout(total=max(1.0, self.cfg.interval_ms / 1000), connect=1)
        self.http = aiohttp.ClientSession(
            base_url=self.cfg.sequencer_url, timeout=timeout, json_serialize=dumps
        )
        self._task = asyncio.create_task(self._run())
        self.log.info("oracle started", origin_ns=self.origin_ns, interval_ms=self.cfg.interval_ms)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.http is not None:
            await self.http.close()
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

    def quotes(self, k: int, now_ns: int) -> list[tuple[str, int, int | None, int, str]]:
        """(market, model price, price to publish or None, observed_ts_ns, mode) at tick k."""
        out = []
        interval_ns = self.cfg.interval_ms * 1_000_000
        for m in MARKET_NAMES:
            model = self.model.price(m, k)
            mm = self.modes[m]
            observed = now_ns
            publish: int | None = model
            if mm.mode == "stale":
                publish = None
            elif mm.mode == "zero":
                publish = 0
            elif mm.mode == "spike":
                publish = max(0, round(model * mm.factor))
            elif mm.mode == "lag":
                back = max(0, -(-mm.lag_ms * 1_000_000 // interval_ns))
                j = max(0, k - back)
                publish = self.model.price(m, j)
                observed = self._tick_ts.get(j, self.origin_ns + j * interval_ns)
            out.append((m, model, publish, observed, mm.mode))
        return out

    async def _tick(self, k: int) -> None:
        now = time.time_ns()
        self.tick = k
        self._tick_ts[k] = now
        self._tick_ts.pop(k - 100_000, None)
        quotes = self.quotes(k, now)
        prices = [
            {"market": m, "price": p, "observed_ts_ns": ts}
            for m, _, p, ts, _ in quotes
            if p is not None
        ]
        delivered = False
        error = None
        if prices:
            assert self.http is not None
            try:
                update = {"kind": "price", "prices": prices, "nonce": k}
                async with self.http.post(
                    "/oracle/prices", json=sign(self.signing_key, update)
                ) as resp:
                    await resp.read()
                    delivered = resp.status == 202
                    if not delivered:
                        error = f"status {resp.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = repr(exc)
        if delivered:
            self.pushed += 1
        lines = []
        for m, model, p, ts, mode in quotes:
            lines.append(
                dumps(
                    {
                        "host_ts_ns": now,
                        "tick": k,
                        "market": m,
                        "model_price": model,
                        "published_price": p if delivered and p is not None else None,
                        "observed_ts_ns": ts,
                        "mode": mode,
                        "push_error": error,
                    }
                )
            )
        self._ref.write("\n".join(lines) + "\n")
        if error is not None and k % 20 == 0:
            self.log.warning("price push failed", tick=k, error=error)

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
        new = [Drift(at_ms, duration_ms, m, float(pct)) for m in markets]
        started = self.model.drifts[len(self.cfg.drifts) :] + new
        self._save_drifts(started)
        self.model.drifts = [*self.cfg.drifts, *started]
        self.log.warning("market move started", markets=markets, pct=pct, at_ms=at_ms,
                         duration_ms=duration_ms)  # fmt: skip
        return json_response({"tick": self.tick, "at_ms": at_ms, "markets": markets})

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
    run_main("oracle", OracleService.from_env)


if __name__ == "__main__":
    main()
