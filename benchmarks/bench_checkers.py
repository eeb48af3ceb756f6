"""Checker throughput: every invariant checker, the coverage counts and the expectation
(`check_run`) on generated run records of 100,000 and 1,000,000 client operations
(10,000 and 100,000 blocks), and the ratio of the two times. Linear scaling means a
ratio near 10 (the records are 10x larger).

    .venv/bin/python benchmarks/bench_checkers.py            # 100k and 1M operations
    .venv/bin/python benchmarks/bench_checkers.py --small    # 10k and 100k (quick)

The run records are written to a temporary directory (about 750 MB for 1M operations)
and removed afterwards. Generation is not timed; checking is timed three times from a
fresh `RunRecord` each time, and the best time is reported.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from l2chaos.invariants.check import check_run
from l2chaos.invariants.simulate import generate_run


def bench(root: Path, ops: int, blocks: int, repeat: int) -> tuple[float, int, dict[str, float]]:
    run = root / f"run-{ops}"
    stats = generate_run(run, ops=ops, blocks=blocks, seed=7)
    best = float("inf")
    per_checker: dict[str, float] = {}
    for _ in range(repeat):
        started = time.perf_counter()
        outcome = check_run(run)
        took = time.perf_counter() - started
        if outcome.exit_code != 0:
            raise SystemExit(f"the generated record did not pass: {outcome.expectation.problems}")
        if took < best:
            best = took
            per_checker = {v.name: v.seconds for v in outcome.verdicts}
    size_mb = sum(p.stat().st_size for p in run.rglob("*") if p.is_file()) / 1e6
    print(
        f"{ops:>9,} ops {blocks:>7,} blocks: {stats.records:>9,} records ({size_mb:,.0f} MB) "
        f"checked in {best:6.2f} s = {stats.records / best:>9,.0f} records/s, "
        f"{ops / best:>9,.0f} ops/s"
    )
    shutil.rmtree(run)
    return best, stats.records, per_checker


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--small", action="store_true", help="10k and 100k operations instead")
    ap.add_argument("--repeat", type=int, default=3, help="timed checks per size (best counts)")
    args = ap.parse_args()
    small = (10_000, 1_000) if args.small else (100_000, 10_000)
    large = (100_000, 10_000) if args.small else (1_000_000, 100_000)
    with tempfile.TemporaryDirectory(prefix="l2chaos-bench-") as tmp:
        root = Path(tmp)
        t_small, r_small, _ = bench(root, *small, args.repeat)
        t_large, r_large, per = bench(root, *large, args.repeat)
    print(
        "per checker at the larger size (s): " + ", ".join(f"{k} {v:.2f}" for k, v in per.items())
    )
    print(
        f"scaling: {r_large / r_small:.1f}x the records took {t_large / t_small:.2f}x the time "
        f"(time per record {t_large / r_large * 1e6:.2f} us vs {t_small / r_small * 1e6:.2f} us; "
        f"ratio {t_large / r_large / (t_small / r_small):.2f}, 1.00 = linear)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
