"""Fault injection lateness: how late the timeline acts against its schedule.

Plays a dense timeline of real faults (Toxiproxy toxics on links, a proxy down and up,
a SIGSTOP/SIGCONT pause) against a small stack on the local backend, with the same
Timeline class a run uses, and prints lateness (actual start - scheduled time) of
injects and heals, p50/p99/max, plus how long the actions themselves took.
Target: lateness p99 under 50 ms.

    .venv/bin/python benchmarks/bench_timeline.py [--faults 200] [--gap-ms 40]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _support import percentile, tinystack
from l2chaos.backends.local import LocalBackend
from l2chaos.faults.base import FaultContext, NoParams, Target, TargetKind
from l2chaos.params import Duration
from l2chaos.registry import faults
from l2chaos.rundir import RunDir
from l2chaos.scenario import FaultUse
from l2chaos.timeline import Timeline

ROOT = Path(__file__).resolve().parents[1]


def build(n: int, gap_ms: int) -> list[FaultUse]:
    catalogue = faults()
    rng = random.Random(7)
    uses: list[FaultUse] = []
    links = ["front->api", "api->db", "front->db"]
    for i in range(n):
        kind = rng.choice(["latency", "latency", "timeout", "down", "pause"])
        at = 200 + i * gap_ms
        hold = gap_ms * 2
        window = Duration.of(ms=hold)
        if kind == "pause":
            # one pause at a time on one service: pauses never overlap each other
            if any(u.name == "process.pause" and u.end_ns > at * 1_000_000 for u in uses):
                kind = "latency"
            else:
                target = Target(TargetKind.SERVICE, services=("front",), text="front")
                fault = catalogue["process.pause"](target, NoParams(), window)
        if kind != "pause":
            link = links[i % len(links)]
            target = Target(TargetKind.LINK, links=(link,), text=link)
            cls = catalogue[f"network.{kind}"]
            given = {"latency": "50ms"} if kind == "latency" else {}
            if kind == "down":
                # a down link per link at a time; fall back to a toxic when one is active
                busy = any(
                    u.name == "network.down"
                    and u.fault.target.links == (link,)
                    and u.end_ns > at * 1_000_000
                    for u in uses
                )
                if busy:
                    cls = catalogue["network.latency"]
                    given = {"latency": "50ms"}
            fault = cls.build(target, given, window)
        uses.append(FaultUse(i, f"f{i}", fault, at * 1_000_000, hold * 1_000_000))
    return uses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faults", type=int, default=200)
    ap.add_argument("--gap-ms", type=int, default=40)
    args = ap.parse_args()
    tiny = tinystack()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        run = tiny.stack_run(tiny.write_stack(folder / "stackdef"))
        backend = LocalBackend()
        rd = RunDir.create(folder, "bench-timeline")
        stack = backend.up(run, run_id=rd.run_id, run_dir=rd.path, env={})
        try:
            uses = build(args.faults, args.gap_ms)

            def context(use: FaultUse, note: Callable[..., None]) -> FaultContext:
                no_hooks: Any = None  # the benchmark's faults use no hooks
                return FaultContext(
                    stack, stack.links, stack.control, no_hooks, random.Random(use.index), note=note
                )

            t0 = time.monotonic_ns()
            tl = Timeline(uses, context, rd.jsonl("faults.jsonl"), t0)
            tl.start()
            end_s = (uses[-1].end_ns / 1e9) + 1.0
            tl.wait_done(end_s + 30)
            tl.heal_all()
            rd.close()
        finally:
            backend.down(stack)
        records = [json.loads(x) for x in (rd.path / "faults.jsonl").read_text().splitlines()]
    scheduled = [
        r for r in records if r["scheduled_ns"] is not None and r["action"] in ("inject", "heal")
    ]
    failed = [r for r in scheduled if not r["ok"]]
    for action in ("inject", "heal"):
        late = [r["lateness_ms"] for r in scheduled if r["action"] == action]
        took = [r["took_ms"] for r in scheduled if r["action"] == action]
        print(
            f"{action:6} n={len(late):4}  lateness p50 {percentile(late, 0.5):6.2f} ms  p99 {percentile(late, 0.99):6.2f} ms  "
            f"max {max(late):6.2f} ms   action took p50 {statistics.median(took):6.2f} ms p99 {percentile(took, 0.99):6.2f} ms"
        )
    every = [r["lateness_ms"] for r in scheduled]
    verdict = "meets" if percentile(every, 0.99) < 50 else "MISSES"
    print(
        f"all    lateness p99 {percentile(every, 0.99):.2f} ms ({verdict} the 50 ms target); failed actions: {len(failed)}"
    )


if __name__ == "__main__":
    main()
