"""`example.block_progress`: outside the fault windows the chain keeps producing blocks.

Reads only the harness's own records (probes.jsonl: the block height sampled four times
a second; faults.jsonl: the fault windows), so it works for a stack without an audit
export, as long as the stack has a `block_height` probe."""

from __future__ import annotations

from typing import ClassVar

from l2chaos.durations import Duration
from l2chaos.invariants.base import Checker, Verdict
from l2chaos.invariants.record import RunRecord
from l2chaos.params import param, params

S = 1_000_000_000


@params
class ProgressParams:
    max_gap: Duration = param(Duration.of(s=2), "longest time the height may stand still")
    settle: Duration = param(
        Duration.of(s=5), "time after each heal still excused", min=Duration(0)
    )


class BlockProgress(Checker[ProgressParams]):
    name = "example.block_progress"
    summary = (
        "Outside fault windows (and `settle` after each), the probed block height never "
        "stands still for longer than `max_gap`."
    )
    # Without these files the verdict is not_applicable (check_run tests them first).
    needs: ClassVar[tuple[str, ...]] = ("probes.jsonl", "faults.jsonl")

    def check(self, record: RunRecord) -> Verdict:
        max_gap, settle = self.p.max_gap.ns, self.p.settle.ns
        excused = [(start, end + settle) for _, start, end in record.fault_windows()]
        samples = sorted(
            (s.t_ns, s.block_height) for s in record.samples() if s.block_height is not None
        )
        if not samples:
            return self.not_applicable(
                "no block height samples: the stack has no block_height probe"
            )
        found = self.findings()
        judged = 0
        since: int | None = None  # when the height last changed (outside the windows)
        height = -1
        for t, h in samples:
            if any(s <= t <= e for s, e in excused):
                since = None
                continue
            judged += 1
            if since is None or h != height:
                since, height = t, h
            elif t - since > max_gap:
                found.add(
                    f"block height stood still at {h} for {(t - since) / S:.1f}s",
                    t_ns=t, block=h, since_t_ns=since, expected=f"<= {max_gap / S:g}s",
                    seen=round((t - since) / S, 3),
                )  # fmt: skip
                since = t  # one violation per max_gap of standstill
        return self.verdict({"samples": judged}, found, work=len(samples), what="probe samples")
