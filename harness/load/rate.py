"""Open-loop load: a target arrival rate of operations, held across all Locust workers.

    load:
      users: 40            # the pool: at most this many operations in flight
      workers: 2
      rate:
        shape: spike       # constant | ramp | spike | csv
        ops: 100           # steps per second across all workers
        factor: 10         # spike: ops x factor ...
        at: 30s            # ... from 30 s after the run's time zero ...
        for: 60s           # ... for 60 s

Locust's users are closed loop (a user waits for its answer, then thinks) and Locust
has no global rate (its `LoadTestShape` sets user counts, not arrivals). With `rate:`,
each worker process runs a pacer that issues arrivals at its share of the target rate;
a user takes one arrival per step instead of thinking. The master splits the rate
among the workers in proportion to the users each runs (a custom message, resent every
`SHARE_INTERVAL_S`), so a worker that joins or leaves moves the rate to the others. An
arrival no user took within `max_lag` is dropped and counted: the run's record shows
the rate offered and the rate achieved per second (`rate.jsonl`), never a rate made up
later.

Every shape is kept as one piecewise-linear curve (`RatePlan.points`, seconds since the
run's time zero -> steps/s; two points at the same time are a step), so the pacer and
the report need one function, `RatePlan.target`. This module is pure (no gevent).
"""

from __future__ import annotations

import bisect
import csv
import functools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import ScenarioError
from ..params import REQUIRED, Param, Where, bind_params

__all__ = [
    "RATE_SHAPES",
    "SHARE_INTERVAL_S",
    "RateCounter",
    "RatePlan",
    "RateSecond",
    "RateSummary",
    "merge_rates",
    "parse_rate",
    "split_shares",
]

_S = 1_000_000_000
SHARE_INTERVAL_S = 0.5
_MAX_OPS = 1_000_000.0
RATE_FILE = "rate.jsonl"  # in the run's load/ directory
WORKER_RATE_GLOB = "rate-*.jsonl"  # in the history directory, one per worker

_OPS = Param("ops", "float", REQUIRED, "steps per second across all workers", min=0, max=_MAX_OPS)
_COMMON: tuple[Param, ...] = (
    Param("shape", "enum", REQUIRED, "constant, ramp, spike or csv",
          choices=("constant", "ramp", "spike", "csv")),
    Param("max_lag", "duration", 1 * _S,
          "an arrival no user took within this is dropped and counted (not made up later)",
          min=1_000_000, max=60 * _S),
)  # fmt: skip
SHAPE_PARAMS: Mapping[str, tuple[Param, ...]] = {
    "constant": (_OPS,),
    "ramp": (
        Param("from", "float", REQUIRED, "steps/s before and at the start of the ramp", min=0, max=_MAX_OPS),
        Param("to", "float", REQUIRED, "steps/s at the end of the ramp and after", min=0, max=_MAX_OPS),
        Param("over", "duration", REQUIRED, "how long the ramp lasts", min=1_000_000),
        Param("at", "duration", 0, "when the ramp starts, from the run's time zero", min=0),
    ),
    "spike": (
        _OPS,
        Param("factor", "float", 10.0, "the rate during the spike is ops x factor", min=0, max=10_000),
        Param("at", "duration", REQUIRED, "when the spike starts, from the run's time zero", min=0),
        Param("for", "duration", 60 * _S, "how long the spike lasts", min=1_000_000),
    ),
    "csv": (
        Param("file", "str", REQUIRED,
              "a CSV file (relative to the scenario) of rows `seconds,ops`: each rate holds "
              "from its second until the next row's; a header row is allowed"),
    ),
}  # fmt: skip
RATE_SHAPES = tuple(SHAPE_PARAMS)


@dataclass(frozen=True)
class RatePlan:
    """A validated `rate:`: the curve of target steps/s over seconds since t0."""

    shape: str
    points: tuple[tuple[float, float], ...]  # (t_s, ops), t_s non-decreasing
    max_lag_ns: int = 1 * _S

    def target(self, t_s: float) -> float:
        """Target steps/s at `t_s` seconds since the run's time zero."""
        pts = self.points
        i = bisect.bisect_right(pts, t_s, key=lambda p: p[0]) - 1
        if i < 0:
            return pts[0][1]
        t0, r0 = pts[i]
        if i + 1 >= len(pts):
            return r0
        t1, r1 = pts[i + 1]
        return r0 + (r1 - r0) * (t_s - t0) / (t1 - t0)  # t1 > t0: i is the last at t0

    def spikes(self) -> list[tuple[float, float]]:
        """The (start, end) seconds of a `spike` shape's raised rate (none for the other
        shapes, or a factor that does not raise it): the load the stack must recover
        from once it ends (the recoverability checker measures from `end`)."""
        if self.shape != "spike" or len(self.points) != 5:
            return []
        (_, base), (at, _), (_, high), (end, _), _ = self.points
        return [(at, end)] if high > base else []

    def scaled(self, scale: float) -> RatePlan:
        """The curve with its times multiplied by a scenario's `time_scale` (when the
        spike comes is schedule; how many steps/s is magnitude)."""
        return replace(self, points=tuple((t * scale, r) for t, r in self.points))

    def to_json(self) -> dict[str, Any]:
        return {"shape": self.shape, "points": [list(p) for p in self.points],
                "max_lag_ns": self.max_lag_ns}  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RatePlan:
        return cls(
            shape=str(data["shape"]),
            points=tuple((float(t), float(r)) for t, r in data["points"]),
            max_lag_ns=int(data["max_lag_ns"]),
        )


def parse_rate(section: Any, where: Where) -> RatePlan:
    """Validate a `load.rate` mapping (file, line and field in every error)."""
    if not isinstance(section, Mapping):
        raise where.error(
            "expected a mapping with a shape (constant, ramp, spike or csv), "
            f"e.g. {{shape: constant, ops: 100}}, got {section!r}"
        )
    shape = section.get("shape")
    if not isinstance(shape, str) or shape not in SHAPE_PARAMS:
        raise where.child("shape").error(
            f"expected one of {', '.join(RATE_SHAPES)}, got {shape!r}",
            section,
            "shape" if "shape" in section else None,
        )
    bound = bind_params((*_COMMON, *SHAPE_PARAMS[shape]), section, where)
    lag = int(bound["max_lag"])
    s = _S
    if shape == "constant":
        points: list[tuple[float, float]] = [(0.0, bound["ops"])]
    elif shape == "ramp":
        at, over = bound["at"] / s, bound["over"] / s
        points = [(0.0, bound["from"]), (at, bound["from"]), (at + over, bound["to"])]
    elif shape == "spike":
        at, end, ops = bound["at"] / s, (bound["at"] + bound["for"]) / s, bound["ops"]
        high = ops * bound["factor"]
        points = [(0.0, ops), (at, ops), (at, high), (end, high), (end, ops)]
    else:
        points = _read_csv(bound["file"], where.child("file"), section)
    return RatePlan(shape=shape, points=tuple(points), max_lag_ns=lag)


def _read_csv(name: str, where: Where, section: Mapping[str, Any]) -> list[tuple[float, float]]:
    base = Path(where.file).parent if where.file else Path.cwd()
    path = (base / name).resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise where.error(f"cannot read the rate file {path}: {exc}", section, "file") from None
    points: list[tuple[float, float]] = []
    for n, row in enumerate(csv.reader(text.splitlines()), 1):
        cells = [c.strip() for c in row]
        if not cells or not any(cells) or cells[0].startswith("#"):
            continue
        at = functools.partial(ScenarioError, file=str(path), line=n, field=where.path)
        try:
            t, r = (float(c) for c in cells)
        except ValueError:
            if n == 1 and not points:
                continue  # a header row
            raise at(f"expected `seconds,ops` (two numbers), got {','.join(cells)!r}") from None
        if not (math.isfinite(t) and math.isfinite(r)) or t < 0 or not 0 <= r <= _MAX_OPS:
            raise at(f"expected seconds >= 0 and 0 <= ops <= {_MAX_OPS:.0f}, got {t}, {r}")
        if points and t <= points[-1][0]:
            raise at(f"seconds must increase: {t} after {points[-1][0]}")
        if points:
            points.append((t, points[-1][1]))  # the previous rate holds until here
        points.append((t, r))
    if not points:
        raise where.error(f"the rate file {path} has no `seconds,ops` rows", section, "file")
    if points[0][0] > 0:
        points[:0] = [(0.0, 0.0), (points[0][0], 0.0)]  # nothing before the first row
    return points


def split_shares(users: Mapping[str, int]) -> dict[str, float]:
    """Each worker's share of the rate, in proportion to the users it runs. While any
    worker reports none (users still spawning: Locust's reports lag the dispatch by up
    to a heartbeat), an equal split. Shares sum to 1; no workers, no shares."""
    if not users:
        return {}
    if min(users.values()) <= 0:
        return {w: 1 / len(users) for w in users}
    total = sum(users.values())
    return {w: n / total for w, n in users.items()}


@dataclass
class RateSecond:
    """One second of one worker (or, merged, of the run): the arrivals its share of the
    target asked for (`target`, fractional), those issued (`offered`), those a user
    started (`achieved`) and those dropped after `max_lag`."""

    t_s: int
    target: float = 0.0
    offered: int = 0
    achieved: int = 0
    dropped: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"t_s": self.t_s, "target": round(self.target, 3), "offered": self.offered,
                "achieved": self.achieved, "dropped": self.dropped}  # fmt: skip


@dataclass
class RateCounter:
    """Per-second counts of one worker's pacer, keyed by whole seconds since t0."""

    seconds: dict[int, RateSecond] = field(default_factory=dict)

    def _at(self, t_s: float) -> RateSecond:
        k = math.floor(t_s)
        sec = self.seconds.get(k)
        if sec is None:
            sec = self.seconds[k] = RateSecond(k)
        return sec

    def add_target(self, t_s: float, arrivals: float) -> None:
        self._at(t_s).target += arrivals

    def offered(self, t_s: float, n: int = 1) -> None:
        self._at(t_s).offered += n

    def achieved(self, t_s: float) -> None:
        self._at(t_s).achieved += 1

    def dropped(self, t_s: float) -> None:
        self._at(t_s).dropped += 1

    def take_before(self, t_s: float) -> list[RateSecond]:
        """The seconds that ended before `t_s` (nothing counts into them any more),
        removed from the counter, oldest first."""
        done = sorted(k for k in self.seconds if k + 1 <= t_s)
        return [self.seconds.pop(k) for k in done]


def read_rate_lines(lines: Iterable[str]) -> list[RateSecond]:
    """RateSecond records from JSON lines (a cut last line is ignored)."""
    out: list[RateSecond] = []
    for line in lines:
        try:
            d = json.loads(line)
            out.append(
                RateSecond(
                    int(d["t_s"]),
                    float(d["target"]),
                    int(d["offered"]),
                    int(d["achieved"]),
                    int(d["dropped"]),
                )
            )
        except (ValueError, KeyError, TypeError):
            continue
    return out


@dataclass(frozen=True)
class RateSummary:
    """The whole run's arrivals: asked for by the target, issued, started, dropped, and
    the seconds counted (summary.json of the load)."""

    seconds: int
    target: float
    offered: int
    achieved: int
    dropped: int

    @classmethod
    def of(cls, seconds: Sequence[RateSecond]) -> RateSummary:
        return cls(
            seconds=len(seconds),
            target=sum(s.target for s in seconds),
            offered=sum(s.offered for s in seconds),
            achieved=sum(s.achieved for s in seconds),
            dropped=sum(s.dropped for s in seconds),
        )

    def to_json(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "target": round(self.target, 1), "offered": self.offered,
                "achieved": self.achieved, "dropped": self.dropped}  # fmt: skip


def merge_rates(inputs: Sequence[Path], out: Path) -> list[RateSecond]:
    """Sum the workers' per-second counts into `out` (one line per second, in order)."""
    total: dict[int, RateSecond] = {}
    for p in inputs:
        with open(p, encoding="utf-8", errors="replace") as f:
            for r in read_rate_lines(f):
                acc = total.setdefault(r.t_s, RateSecond(r.t_s))
                acc.target += r.target
                acc.offered += r.offered
                acc.achieved += r.achieved
                acc.dropped += r.dropped
    seconds = [total[k] for k in sorted(total)]
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("".join(json.dumps(s.to_json()) + "\n" for s in seconds), encoding="utf-8")
    tmp.replace(out)
    return seconds
