"""Checker throughput: every invariant checker, the coverage counts and the expectation
(`check_run`) on generated run records of 100,000 and 1,000,000 client operations
(10,000 and 100,000 blocks), and the ratio of the two times. Linear scaling means a
ratio near 10 (the records are 10x larger). State roots are replayed at every block
(chain_consistency's default); the cost of that over replaying the final root only is
printed. Goal (issue 15): >= 250,000 records/s at 1M operations, time ratio <= 11.
Wall time and CPU time (time.process_time) are both printed, each the median of the
timed checks, with the machine's load average when they ran: on a shared machine CPU
time is the steadier, and the goal and the ratio are judged on it.

    .venv/bin/python benchmarks/bench_checkers.py            # 100k and 1M operations
    .venv/bin/python benchmarks/bench_checkers.py --small    # 10k and 100k (quick)

The run records are written to a temporary directory (about 750 MB for 1M operations)
and removed afterwards (`--records DIR` keeps them there and reuses them next time).
Generation is not timed; checking is timed three times from a fresh `RunRecord` each
time, and the median is reported.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _support import arg_parser
from l2chaos.invariants.check import bulk_reading, check_run, run_checker
from l2chaos.invariants.record import RunRecord
from l2chaos.invariants.replay import FOLLOWERS
from l2chaos.invariants.simulate import generate_run
from l2chaos.params import Where, bind
from l2chaos.registry import checkers


def _roots_only(run: Path, mode: str) -> float:
    """CPU seconds of chain_consistency alone (its own ledger replay: no other checker
    is declared to share it) with `replay_roots: mode`."""
    cls = checkers()["chain_consistency"]
    params = bind(cls.params_model(), {"replay_roots": mode}, Where(None, "chain_consistency"))
    started = time.process_time()
    with bulk_reading():
        v = run_checker(cls(params), RunRecord(run))
    assert v.status == "pass", v.violations
    return time.process_time() - started


def bench(
    root: Path, ops: int, blocks: int, repeat: int, keep: bool
) -> tuple[float, int, dict[str, float]]:
    run, count = root / f"run-{ops}", root / f"run-{ops}.records"
    if not (keep and count.is_file()):
        shutil.rmtree(run, ignore_errors=True)
        count.write_text(str(generate_run(run, ops=ops, blocks=blocks, seed=7).records))
    records = int(count.read_text())
    walls: list[float] = []
    cpus: list[float] = []
    per_checker: dict[str, float] = {}
    load = os.getloadavg()[0]
    for _ in range(repeat):
        started, cpu0 = time.perf_counter(), time.process_time()
        outcome = check_run(run)
        took, cpu = time.perf_counter() - started, time.process_time() - cpu0
        if outcome.exit_code != 0:
            raise SystemExit(f"the generated record did not pass: {outcome.expectation.problems}")
        walls.append(took)
        cpus.append(cpu)
        if cpu <= min(cpus):
            per_checker = {v.name: v.seconds for v in outcome.verdicts}
    load = max(load, os.getloadavg()[0])
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    size_mb = sum(p.stat().st_size for p in run.rglob("*") if p.is_file()) / 1e6
    print(
        f"{ops:>9,} ops {blocks:>7,} blocks: {records:>9,} records ({size_mb:,.0f} MB) "
        f"checked in CPU {cpu:.2f} s = {records / cpu:>9,.0f} records per CPU-s, "
        f"wall {wall:.2f} s = {records / wall:,.0f} records/s "
        f"(median of {repeat}; CPU {', '.join(f'{c:.2f}' for c in cpus)}; "
        f"load average up to {load:.1f} on {os.cpu_count()} cores)"
    )
    every, final = _roots_only(run, "all"), _roots_only(run, "final")
    print(
        f"  state roots at every one of {blocks:,} blocks: chain_consistency {every:.2f} CPU-s, "
        f"final root only {final:.2f} CPU-s (+{every - final:.2f} s for the per-block replay)"
    )
    if not keep:
        shutil.rmtree(run)
    return cpu, records, per_checker


def main() -> int:
    ap = arg_parser(__doc__)
    ap.add_argument("--small", action="store_true", help="10k and 100k operations instead")
    ap.add_argument("--repeat", type=int, default=3, help="timed checks per size (median counts)")
    ap.add_argument("--records", type=Path, help="keep the generated records in DIR and reuse them")
    args = ap.parse_args()
    small = (10_000, 1_000) if args.small else (100_000, 10_000)
    large = (100_000, 10_000) if args.small else (1_000_000, 100_000)
    with tempfile.TemporaryDirectory(prefix="l2chaos-bench-") as tmp:
        root = args.records or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        keep = args.records is not None
        t_small, r_small, _ = bench(root, *small, args.repeat, keep)
        t_large, r_large, per = bench(root, *large, args.repeat, keep)
    print(
        "per checker at the larger size (wall s, the fastest check; the one ledger replay "
        f"that {', '.join(sorted(FOLLOWERS))} share counts in the first of them to run): "
        + ", ".join(f"{k} {v:.2f}" for k, v in per.items())
    )
    rate = r_large / t_large
    print(
        f"goal >= 250,000 records per CPU-second at the larger size: {rate:,.0f} "
        f"({'met' if rate >= 250_000 else 'NOT met'}); CPU time ratio {t_large / t_small:.2f} "
        f"(goal <= 11: {'met' if t_large / t_small <= 11 else 'NOT met'})"
    )
    print(
        f"scaling: {r_large / r_small:.1f}x the records took {t_large / t_small:.2f}x the time "
        f"(time per record {t_large / r_large * 1e6:.2f} us vs {t_small / r_small * 1e6:.2f} us; "
        f"ratio {t_large / r_large / (t_small / r_small):.2f}, 1.00 = linear)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
