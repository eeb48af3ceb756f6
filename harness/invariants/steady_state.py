"""steady_state: error rate and latency percentiles within bounds outside fault
windows (a Chaos-Toolkit-style steady-state hypothesis), from the client history.

An operation is outside the fault windows when its whole [invoke, completion] interval
lies outside every window [inject, heal + `settle`]. Errors are `info` completions
(unknown outcome: timeouts, connection errors, 5xx); with `count_fail: true` also
`fail` (definite rejections, which are normal business answers by default). Latency
percentiles are over acknowledged (`ok`) operations, nearest rank. The bounds hold over
all steady operations together, and in each steady segment (before the first fault,
between faults, after the last) that has at least `min_ops` operations, so a stack
that stays degraded after the faults is caught even after a long healthy baseline.
`ops` restricts the check to some operation kinds. Work = operations in the history; when
none of them succeeded the check fails (a stack that answered nothing proved nothing).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from typing import ClassVar

from l2chaos.params import Duration, Ratio, param, params
from l2chaos.rundir.json_types import JsonObject

from .base import Checker, Findings, Verdict
from .coverage import merge_intervals
from .ops import OPEN, OpsIndex, ops_index
from .record import HISTORY, RunRecord


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None if empty)."""
    if not sorted_values:
        return None
    k = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[k - 1]


def _bound(q: str) -> float:
    return param(0.0, f"bound on {q} latency of ok ops (0: none)", min=0)


@params
class SteadyParams:
    max_error_rate: Ratio = param(0.01, "share of info (unknown) outcomes")
    p50_ms: float = _bound("p50")
    p95_ms: float = _bound("p95")
    p99_ms: float = param(1000.0, "bound on p99 latency of ok ops (0: none)", min=0)
    settle: Duration = param(
        Duration.of(s=5),
        "time after each heal still treated as part of the fault window",
        min=Duration(0),
    )
    count_fail: bool = param(False, "count fail (4xx) outcomes as errors too")
    ops: tuple[str, ...] = param((), "operation kinds to check (empty: all)")
    min_ops: int = param(100, "smallest segment judged on its own", min=1)


class SteadyState(Checker[SteadyParams]):
    name = "steady_state"
    summary = "Error rate and latency percentiles stay within bounds outside fault windows."
    needs: ClassVar[tuple[str, ...]] = (HISTORY,)

    def check(self, record: RunRecord) -> Verdict:
        ops = ops_index(record)
        if ops is None:
            return self.not_applicable("history.jsonl is missing")
        settle = self.p.settle.ns
        windows = merge_intervals([(s, e + settle) for _, s, e in record.fault_windows()])
        starts = [w[0] for w in windows]
        wanted = set(self.p.ops)
        codes = {i for i, n in enumerate(ops.op_names) if not wanted or n in wanted}
        # segment k = the steady time before window k (k = len(windows): after the last)
        segments: dict[int, list[int]] = {}
        in_scope = succeeded = 0
        for i in range(len(ops)):
            if ops.op[i] not in codes:
                continue
            in_scope += 1
            succeeded += ops.outcome[i] == 0
            inv, done = ops.invoke_t[i], ops.done_t[i]
            if done >= OPEN:
                continue  # still open when the run ended: says nothing about the stack
            k = bisect_left(starts, inv)  # first window starting at/after the invoke
            if k > 0 and windows[k - 1][1] >= inv:
                continue  # invoked inside the previous window
            if k < len(windows) and done >= windows[k][0]:
                continue  # still running when the next window opened
            segments.setdefault(k, []).append(i)
        found = self.findings()
        all_idx = [i for seg in segments.values() for i in seg]
        overall = self._judge(ops, all_idx, "all steady operations", found)
        per_segment: list[JsonObject] = []
        if len(segments) > 1:
            for k in sorted(segments):
                idx = segments[k]
                label = (
                    "before the first fault"
                    if k == 0
                    else "after the last fault"
                    if k == len(windows)
                    else f"between fault windows {k} and {k + 1}"
                )
                if len(idx) < self.p.min_ops:
                    per_segment.append({"segment": label, "ops": len(idx), "judged": False})
                    continue
                per_segment.append(self._judge(ops, idx, label, found))
        checked = {"ops": len(all_idx), "segments": len(per_segment) or (1 if all_idx else 0)}
        return self.verdict(
            checked,
            found,
            work=in_scope,
            what="operations (all of them inside fault windows)" if in_scope else "operations",
            attempted=in_scope,
            succeeded=succeeded,
            details={
                "overall": overall,
                "segments": per_segment,
                "excluded_in_windows": in_scope - len(all_idx),
            },
        )

    def _judge(self, ops: OpsIndex, idx: list[int], label: str, found: Findings) -> JsonObject:
        if not idx:
            return {"segment": label, "ops": 0, "judged": False}
        count_fail = self.p.count_fail
        errors = 0
        lat: list[float] = []
        for i in idx:
            o = ops.outcome[i]
            if o == 2 or (count_fail and o == 1):
                errors += 1
            if o == 0:
                lat.append(ops.latency_ms[i])
        lat.sort()
        rate = errors / len(idx)
        quantiles = {f"p{q}_ms": percentile(lat, q) for q in (50, 95, 99)}
        start_ns = min(ops.invoke_t[i] for i in idx)
        end_ns = max(ops.done_t[i] for i in idx)
        out: JsonObject = {
            "segment": label,
            "ops": len(idx),
            "judged": True,
            "errors": errors,
            "error_rate": round(rate, 6),
            **quantiles,
            "start_ns": start_ns,
            "end_ns": end_ns,
        }
        bound = self.p.max_error_rate
        if rate > bound:
            found.add(
                f"{label}: error rate {rate:.2%} > {bound:.2%} ({errors} of {len(idx)} operations)",
                segment=label,
                expected=bound,
                seen=round(rate, 6),
                errors=errors,
                ops=len(idx),
                start_ns=start_ns,
                end_ns=end_ns,
            )
        limits = {"p50_ms": self.p.p50_ms, "p95_ms": self.p.p95_ms, "p99_ms": self.p.p99_ms}
        for q, limit in limits.items():
            seen = quantiles[q]
            if limit > 0 and seen is not None and seen > limit:
                slowest = sorted(
                    (i for i in idx if ops.outcome[i] == 0),
                    key=lambda i: ops.latency_ms[i],
                    reverse=True,
                )[:5]
                found.add(
                    f"{label}: {q[:-3]} latency {seen:.1f} ms > {limit:g} ms",
                    segment=label,
                    expected=limit,
                    seen=seen,
                    ops=len(idx),
                    slowest=[
                        {
                            "op": ops.op_names[ops.op[i]],
                            "invoke_t_ns": ops.invoke_t[i],
                            "latency_ms": ops.latency_ms[i],
                        }
                        for i in slowest
                    ],
                )
        return out
