"""Time series for the HTML timeline, computed from the run record.

Everything is bucketed or down-sampled to at most `max_points` per series, so a 1M-op
history still gives a report of a few hundred kilobytes. Times are seconds since the
run's time zero (run.json `t0_ns`, else the first record).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from l2chaos.invariants.ops import OPEN, ops_index
from l2chaos.invariants.record import AUDIT, RunRecord
from l2chaos.load.rate import RATE_FILE, RateSecond, read_rate_lines

__all__ = ["RATE_RECORD", "Band", "LiquidationPoint", "Timeline", "build_timeline"]

RATE_RECORD = f"load/{RATE_FILE}"  # seconds since the run's t0 (l2chaos.load.rate)


@dataclass(frozen=True)
class Band:
    """A fault window, shaded across the timeline (seconds since t0)."""

    fault_id: int
    label: str
    name: str
    target: str
    start_s: float
    end_s: float
    healed: bool


@dataclass(frozen=True)
class LiquidationPoint:
    """A liquidation or a blocked attempt (`guard` names what blocked it)."""

    t_s: float
    market: str | None
    account: int | None
    price: int | None
    guard: str | None
    block: int | None


@dataclass
class Timeline:
    """What the report's timeline draws. x values are seconds since t0."""

    t0_ns: int
    end_s: float
    bucket_s: float
    bands: list[Band] = field(default_factory=list)
    throughput: list[tuple[float, float]] = field(default_factory=list)  # ops/s
    error_rate: list[tuple[float, float]] = field(default_factory=list)  # 0..1
    latency_p50: list[tuple[float, float]] = field(default_factory=list)  # ms
    latency_p99: list[tuple[float, float]] = field(default_factory=list)
    # per market: oracle model price and the price the exchange used (index price)
    oracle: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    used: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    liquidations: list[LiquidationPoint] = field(default_factory=list)
    blocked: list[LiquidationPoint] = field(default_factory=list)
    height: list[tuple[float, float]] = field(default_factory=list)
    # open-loop load (load/rate.jsonl): arrivals/s the target asked for and users started
    rate_target: list[tuple[float, float]] = field(default_factory=list)
    rate_achieved: list[tuple[float, float]] = field(default_factory=list)


def _thin(points: Sequence[tuple[float, float]], max_points: int) -> list[tuple[float, float]]:
    if len(points) <= max_points:
        return list(points)
    step = len(points) / max_points
    out = [points[int(i * step)] for i in range(max_points)]
    out.append(points[-1])
    return out


def _pct(values: list[float], q: float) -> float:
    values.sort()
    k = max(1, math.ceil(q / 100 * len(values)))
    return values[k - 1]


def _rate_seconds(record: RunRecord) -> list[RateSecond]:
    """load/rate.jsonl as the load wrote it (l2chaos.load.rate; none without it)."""
    path = record.path(RATE_RECORD)
    if not path.is_file():
        return []
    with path.open(encoding="utf-8", errors="replace") as f:
        return read_rate_lines(f)


def build_timeline(
    record: RunRecord,
    t0_ns: int | None,
    end_ns: int | None,
    *,
    max_points: int = 600,
) -> Timeline:
    ops = ops_index(record)
    starts: list[int] = []
    if t0_ns is None:
        if ops is not None and len(ops):
            starts.append(min(ops.invoke_t))
        for _, s, _e in record.fault_windows():
            starts.append(s)
    t0 = t0_ns if t0_ns is not None else (min(starts) if starts else 0)
    last = end_ns
    if last is None and ops is not None and len(ops):
        last = max((t for t in ops.done_t if t < OPEN), default=t0)
    end_s = max(1.0, ((last or t0) - t0) / 1e9)
    bucket_s = max(0.25, end_s / max_points)
    tl = Timeline(t0_ns=t0, end_s=end_s, bucket_s=bucket_s)

    def sec(t: int) -> float:
        return round((t - t0) / 1e9, 3)

    for fr, s, e in record.fault_windows():
        tl.bands.append(Band(fr.fault_id, fr.label, fr.name, fr.target, sec(s), sec(e), fr.healed))

    if ops is not None and len(ops):
        n = int(end_s / bucket_s) + 1
        total = [0] * n
        errors = [0] * n
        lat: list[list[float]] = [[] for _ in range(n)]
        for i in range(len(ops)):
            done = ops.done_t[i]
            if done >= OPEN:
                continue
            b = int((done - t0) / 1e9 / bucket_s)
            if not 0 <= b < n:
                continue
            total[b] += 1
            o = ops.outcome[i]
            if o == 2:
                errors[b] += 1
            elif o == 0:
                lat[b].append(ops.latency_ms[i])
        for b in range(n):
            x = round(b * bucket_s, 3)
            tl.throughput.append((x, total[b] / bucket_s))
            if total[b]:
                tl.error_rate.append((x, errors[b] / total[b]))
            if lat[b]:
                tl.latency_p50.append((x, _pct(lat[b], 50)))
                tl.latency_p99.append((x, _pct(lat[b], 99)))

    oracle: dict[str, list[tuple[float, float]]] = {}
    for tick in record.oracle_reference():
        t, m, price = tick.host_ts_ns, tick.market, tick.model_price
        if t is not None and m is not None and price is not None:
            oracle.setdefault(m, []).append((sec(t), float(price)))
    tl.oracle = {m: _thin(v, max_points) for m, v in sorted(oracle.items())}

    block_time: dict[int, int] = {}
    heights: list[tuple[float, float]] = []
    if record.has(AUDIT.BLOCKS):
        for blk in record.blocks():
            t, seq, num = blk.host_ts_ns, blk.seq, blk.number
            if t is not None and seq is not None:
                block_time[seq] = t
                if num is not None:
                    heights.append((sec(t), float(num)))
    else:
        for p in record.samples():
            if p.block_height is not None:
                heights.append((sec(p.t_ns), float(p.block_height)))
    tl.height = _thin(heights, max_points)

    used: dict[str, list[tuple[float, float]]] = {}
    for row in record.market_state():
        seq, m, index = row.block_seq, row.market, row.index_price
        t = block_time.get(seq) if seq is not None else None
        if t is not None and m is not None and index is not None:
            used.setdefault(m, []).append((sec(t), float(index)))
    tl.used = {m: _thin(sorted(v), max_points) for m, v in sorted(used.items())}

    for rate in _rate_seconds(record):
        x = float(rate.t_s)  # the load counts from the run's t0 too
        tl.rate_target.append((x, rate.target))
        tl.rate_achieved.append((x, float(rate.achieved)))
    tl.rate_target = _thin(tl.rate_target, max_points)
    tl.rate_achieved = _thin(tl.rate_achieved, max_points)

    cap = 2000
    for ev in record.events(kinds=("liquidation", "liquidation_blocked")):
        data = ev.data
        t = ev.host_ts_ns
        if t is None or data is None:
            continue
        market, account, fill, guard = (
            data.get(k) for k in ("market", "account", "price", "guard")
        )
        point = LiquidationPoint(
            sec(t),
            market if isinstance(market, str) else None,
            account if isinstance(account, int) else None,
            fill if isinstance(fill, int) and not isinstance(fill, bool) else None,
            guard if isinstance(guard, str) else None,
            ev.block,
        )
        target = tl.liquidations if ev.kind == "liquidation" else tl.blocked
        if len(target) < cap:
            target.append(point)
    return tl
