"""The market the reference stack trades against: a seeded model of every market's USD
price per tick, served by the price source (pricefeed.py) and recomputed by the oracle
for its reference log (oracle.py).

The model: a seeded random walk per market (log-normal steps of PERPDEX_ORACLE_VOL_BPS
per tick, rounded to the market's tick P), plus an optional scripted drift list
PERPDEX_ORACLE_DRIFT = [{"at_ms", "duration_ms", "market", "pct"}] (a linear move of
`pct` percent over the window, kept afterwards: crash scenarios), or a recorded series
PERPDEX_ORACLE_CSV (columns offset_ms,<market>,... in USD; the last row at or before
the tick applies). Tick k is k x PERPDEX_ORACLE_INTERVAL_MS after the oracle's origin;
the price at tick k is a pure function of the seed (or file), the drifts and k, so two
processes with the same settings agree on every tick, and a restarted one continues the
same path.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
from array import array
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from l2chaos.stacks.perpdex.common.config import ConfigError, env_int, env_json, env_str
from l2chaos.stacks.perpdex.markets import MARKET_NAMES, MARKETS

__all__ = ["Drift", "ModelConfig", "PriceModel", "StartedMoves", "load_csv", "parse_drift"]


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
            m: array("d", [math.log(float(MARKETS[m].ref_usd)) + start_rng.uniform(-0.02, 0.02)])
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


@dataclass(frozen=True)
class ModelConfig:
    """The model's settings, read alike by the price source and the oracle."""

    seed: int
    interval_ms: int
    vol_bps: float
    drifts: list[Drift] = field(default_factory=list)
    csv_path: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str], seed: int) -> ModelConfig:
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
            seed=seed,
            interval_ms=env_int(env, "PERPDEX_ORACLE_INTERVAL_MS", 500, min=10, max=60_000),
            vol_bps=vol,
            drifts=parse_drift(env_json(env, "PERPDEX_ORACLE_DRIFT", None)),
            csv_path=env_str(env, "PERPDEX_ORACLE_CSV", csv_path) if csv_path else None,
        )

    def model(self) -> PriceModel:
        series = load_csv(self.csv_path) if self.csv_path else None
        return PriceModel(self.seed, self.interval_ms, self.vol_bps, self.drifts, series)


class StartedMoves:
    """Market moves started through a hook, after the configured drifts, kept in a file
    so a restarted process continues them (the oracle's truth and its source's market
    each keep one)."""

    def __init__(self, model: PriceModel, path: Path) -> None:
        self.model = model
        self.configured = list(model.drifts)
        self.path = path

    def started(self) -> list[Drift]:
        return self.model.drifts[len(self.configured) :]

    def load(self) -> None:
        try:
            raw = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        self.model.drifts = [*self.configured, *parse_drift(raw, str(self.path))]

    def save(self, started: list[Drift]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps([asdict(d) for d in started]))
        os.replace(tmp, self.path)
        self.model.drifts = [*self.configured, *started]
