"""Detection power: realistic bugs planted in the reference stack, one at a time, and
whether the CI scenario suite on `hardened` catches each.

    .venv/bin/python benchmarks/bench_detection.py                  # every mutant + 3 clean seeds
    .venv/bin/python benchmarks/bench_detection.py --mutants fee-rate,root-lags
    .venv/bin/python benchmarks/bench_detection.py --mutants none --seeds 3   # false alarms only

Each mutant is a small diff of one file of the stack, applied to a temporary copy of
the package (the working tree is never modified); `l2chaos run` runs from that copy
(PYTHONPATH), so every stack service runs the mutated code. The suite runs scenario by
scenario and stops at the first run an invariant fails with evidence. Per mutant it
prints: caught or escaped, the scenario and invariant, whether the catch came only from
a crash or a "sometimes" rule, and the time; then the kill rate (mutants caught by an
invariant), and the unmutated suite over `--seeds` seeds (every run must meet its
expectation: a failure there is a false alarm). Hours of runs: not for CI
(tests/integration/invariants/test_detection_sample.py runs three mutants).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The CI suite (docs/ci.md) and the funding-reset replay, the likeliest catchers first.
SUITE = (
    "paradex-2026-01-19-db-restart-race",
    "crash-2025-10-10-liquidation-cascade",
    "chain-rollback-recovery",
    "paradex-2026-01-19-funding-reset",
    "sequencer-crash-restart",
    "bridge-relayer-stall",
    "paradex-2026-01-19-post-only-band",
    "dydx-2025-10-10-oracle-restart-order",
    "sequencer-db-partition",
    "rpc-drops-and-timeouts",
    "db-latency-and-bandwidth",
)
RUN_TIMEOUT_S = 600


@dataclass(frozen=True)
class Mutant:
    id: str
    area: str
    what: str
    path: str  # relative to the repository root
    edits: tuple[tuple[str, str], ...]  # (old, new), each old found exactly once


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "fee-rate", "fees", "the taker is charged the maker's fee rate (all sums still balance)",
        "stacks/perpdex/engine/exchange.py",
        (("taker_fee = margin_requirement(qty, price, mk.taker_fee_bps)",
          "taker_fee = margin_requirement(qty, price, mk.maker_fee_bps)"),),
    ),
    Mutant(
        "fee-rounding", "fees", "trading fees rounded down instead of up",
        "stacks/perpdex/engine/exchange.py",
        (("maker_fee = margin_requirement(qty, price, mk.maker_fee_bps)",
          "maker_fee = qty * price * mk.maker_fee_bps // BPS"),),
    ),
    Mutant(
        "settlement-rounding", "funding", "funding settlements rounded up, the dust goes negative",
        "stacks/perpdex/engine/margin.py",
        (("cash = payment // FUNDING_SCALE", "cash = -(-payment // FUNDING_SCALE)"),),
    ),
    Mutant(
        "funding-sign", "funding", "the premium is index - mark: the wrong side pays",
        "stacks/perpdex/engine/funding.py",
        (("return premium(mark, index) * _FUNDING_SCALE", "return premium(index, mark) * _FUNDING_SCALE"),),
    ),
    Mutant(
        "funding-period", "funding", "funding accrues per hour, not per 8 hours",
        "stacks/perpdex/engine/funding.py",
        (("* dt_ns // FUNDING_PERIOD_NS", "* dt_ns // (FUNDING_PERIOD_NS // 8)"),),
    ),
    Mutant(
        "funding-clock", "funding", "the accrual time is never advanced: every update re-accrues since genesis",
        "stacks/perpdex/engine/exchange.py",
        (("funding_ts_ns=max(ctx.chain_ts_ns, md.funding_ts_ns),", "funding_ts_ns=md.funding_ts_ns,"),),
    ),
    Mutant(
        "margin-imf", "margin", "maintenance margin computed with the initial margin fraction",
        "stacks/perpdex/engine/margin.py",
        (("margin_requirement(abs(p.size), md[m].mark_price, MARKETS[m].mmf_bps)",
          "margin_requirement(abs(p.size), md[m].mark_price, MARKETS[m].imf_bps)"),),
    ),
    Mutant(
        "liq-fee-uncapped", "liquidation", "the liquidation fee is not capped at the remaining equity",
        "stacks/perpdex/engine/exchange.py",
        (("fee = min(margin_requirement(abs(size), price, MARKETS[m].liquidation_fee_bps), budget)",
          "fee = margin_requirement(abs(size), price, MARKETS[m].liquidation_fee_bps)"),),
    ),
    Mutant(
        "liq-at-index", "liquidation", "positions are taken over at the index, not the mark",
        "stacks/perpdex/engine/exchange.py",
        (("            price = d.mark_price\n            notional = size * price",
          "            price = d.index_price\n            notional = size * price"),),
    ),
    Mutant(
        "insurance-overdraw", "liquidation", "the insurance fund covers any deficit, even beyond its balance",
        "stacks/perpdex/engine/exchange.py",
        (("cover = min(deficit, max(0, ins.cash))", "cover = deficit"),),
    ),
    Mutant(
        "liq-fee-to-vault", "liquidation", "the liquidation fee goes to the liquidator vault, not the insurance fund",
        "stacks/perpdex/engine/exchange.py",
        (("            ins.cash += fee\n", "            vault.cash += fee\n"),
         ("[[acct.id, notional - fee], [LIQUIDATOR, -notional], [INSURANCE, fee]]",
          "[[acct.id, notional - fee], [LIQUIDATOR, -notional + fee]]")),
    ),
    Mutant(
        "shortfall-silent", "liquidation", "a deficit the insurance fund cannot cover is left without a declared shortfall",
        "stacks/perpdex/engine/exchange.py",
        (("            if cover < deficit:\n", "            if cover < deficit and False:\n"),),
    ),
    Mutant(
        "fill-at-taker-price", "engine", "fills execute at the taker's limit instead of the resting price",
        "stacks/perpdex/engine/exchange.py",
        (("fills.append(self._fill(maker, taker, maker.price, qty, tx))",
          "fills.append(self._fill(maker, taker, taker.price or maker.price, qty, tx))"),),
    ),
    # The relayer sends a retried deposit with the same bytes, so the sequencer's hash
    # dedup (3000 blocks) answers it before the engine's consumed-nonce check: a mutant
    # removing that check ("deposit-replay") is dead code. These bridge and rollback
    # paths are live:
    Mutant(
        "rollback-keeps-consumed", "rollback", "the rollback restores every table but the consumed L1 messages: a deposit re-relayed after it is refused",
        "stacks/perpdex/db/chain.py",
        (('"DELETE FROM consumed_messages WHERE block_seq = ANY($1::bigint[])", orphaned',
          '"DELETE FROM consumed_messages WHERE block_seq = ANY($1::bigint[]) AND false", orphaned'),),
    ),
    Mutant(
        "rollback-drops-deposits", "bridge", "deposits credited in orphaned blocks are dropped like withdrawals, never relayed again",
        "stacks/perpdex/bridge.py",
        (("UPDATE l1.messages SET status = 'pending', l2_tx = NULL", "UPDATE l1.messages SET status = 'dropped', l2_tx = NULL"),),
    ),
    Mutant(
        "release-before-final", "bridge", "withdrawals are released on L1 at once, not after finality",
        "stacks/perpdex/bridge.py",
        (("AND l2_block <= $1 ", "AND l2_block <= $1 + 1000000 "),),
    ),
    Mutant(
        "rollback-keeps-credits", "rollback", "deposits credited in orphaned blocks stay 'credited' on the bridge",
        "stacks/perpdex/bridge.py",
        (("AND status = 'credited' AND l2_block_seq", "AND status = 'released' AND l2_block_seq"),),
    ),
    Mutant(
        "reload-columns", "sequencer reload", "market rows load index_ts and funding_ts swapped",
        "stacks/perpdex/db/chain.py",
        (('        r["index_ts_ns"],\n        r["mark_price"],\n        r["funding_index"],\n        r["funding_ts_ns"],',
          '        r["funding_ts_ns"],\n        r["mark_price"],\n        r["funding_index"],\n        r["index_ts_ns"],'),),
    ),
    Mutant(
        "commit-cached-index", "db commit", "the block commit does not update a position's cached index",
        "stacks/perpdex/db/chain.py",
        (('conflict="ON CONFLICT (account, market) DO UPDATE SET size = excluded.size, "\n        "cached_index = excluded.cached_index",',
          'conflict="ON CONFLICT (account, market) DO UPDATE SET size = excluded.size",'),),
    ),
    Mutant(
        "root-lags", "state root", "a block records the state root of the block before it",
        "stacks/perpdex/engine/exchange.py",
        (("        touched: dict[int, dict[str, Any]] = {}\n        for aid in sorted(blk.touched):",
          "        stale = self.root.root()\n        touched: dict[int, dict[str, Any]] = {}\n        for aid in sorted(blk.touched):"),
         ("            state_root=self.root.root(),\n            mode=self.mode,",
          "            state_root=stale,\n            mode=self.mode,")),
    ),
    Mutant(
        "root-order", "state root", "leaves ordered by account id as text, not numerically",
        "stacks/perpdex/engine/stateroot.py",
        (("self._order = sorted(self._leaves)", "self._order = sorted(self._leaves, key=str)"),),
    ),
)  # fmt: skip


@dataclass
class RunOutcome:
    scenario: str
    seed: int | None
    exit_code: int
    seconds: float
    caught_by: list[str] = field(default_factory=list)  # invariants failed with evidence
    sometimes: bool = False  # a sometimes rule failed
    crash: str | None = None  # the harness or the stack broke (exit 3), or a vacuous fail
    run_dir: Path | None = None

    @property
    def met(self) -> bool:
        return self.exit_code == 0


@dataclass
class MutantResult:
    mutant: Mutant
    runs: list[RunOutcome]
    seconds: float

    @property
    def by_invariant(self) -> RunOutcome | None:
        return next((r for r in self.runs if r.caught_by), None)

    def verdict(self) -> str:
        hit = self.by_invariant
        if hit is not None:
            return f"CAUGHT   {hit.scenario}: {', '.join(hit.caught_by)}"
        other = next((r for r in self.runs if not r.met), None)
        if other is None:
            return "ESCAPED"
        how = f"a crash ({other.crash})" if other.crash else "a sometimes rule"
        return f"ESCAPED  (not met only by {how}, in {other.scenario})"


@contextmanager
def package_copy(mutant: Mutant | None) -> Iterator[Path]:
    """A temporary l2chaos package (harness/ + faults stacks scenarios), mutated."""
    with tempfile.TemporaryDirectory(prefix="l2chaos-mutant-") as tmp:
        pkg = Path(tmp) / "l2chaos"
        shutil.copytree(ROOT / "harness", pkg, ignore=shutil.ignore_patterns("__pycache__"))
        for sub in ("faults", "stacks", "scenarios"):
            shutil.copytree(ROOT / sub, pkg / sub, ignore=shutil.ignore_patterns("__pycache__"))
        if mutant is not None:
            apply(mutant, Path(tmp))
        yield Path(tmp)


def apply(mutant: Mutant, tmp: Path) -> None:
    rel = Path(mutant.path)
    top = {"harness": Path("l2chaos")}.get(rel.parts[0], Path("l2chaos") / rel.parts[0])
    target = tmp / top / Path(*rel.parts[1:])
    text = target.read_text()
    for old, new in mutant.edits:
        if text.count(old) != 1:
            raise SystemExit(f"mutant {mutant.id}: {old!r} is not found exactly once in {rel}")
        text = text.replace(old, new)
    target.write_text(text)


def run_one(pkg_root: Path, scenario: str, out: Path, seed: int | None = None) -> RunOutcome:
    env = {**os.environ, "PYTHONPATH": str(pkg_root), "CI": "true"}
    argv = [
        sys.executable, "-m", "l2chaos.cli", "run",
        str(pkg_root / "l2chaos" / "scenarios" / f"{scenario}.yaml"),
        "--profile", "hardened", "--out", str(out), "--no-progress",
    ]  # fmt: skip
    if seed is not None:
        argv += ["--seed", str(seed)]
    started = time.monotonic()
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                              stdin=subprocess.DEVNULL, check=False)  # fmt: skip
        code = done.returncode
    except subprocess.TimeoutExpired:
        code = 3
    outcome = RunOutcome(scenario, seed, code, time.monotonic() - started)
    dirs = sorted(out.glob(f"*-{scenario}-*"))
    if dirs:
        outcome.run_dir = dirs[-1]
        classify(outcome, dirs[-1])
    elif code != 0:
        outcome.crash = f"exit {code}, no run directory"
    return outcome


def classify(outcome: RunOutcome, run_dir: Path) -> None:
    try:
        result: dict[str, Any] = json.loads((run_dir / "result.json").read_text())
    except (OSError, ValueError):
        outcome.crash = outcome.crash or f"exit {outcome.exit_code}, no result.json"
        return
    for inv in result.get("invariants", []):
        if inv.get("status") == "fail" and inv.get("violation_count", 0) > 0:
            outcome.caught_by.append(inv["name"])
        elif inv.get("status") in ("fail", "error") and outcome.exit_code != 0:
            outcome.crash = outcome.crash or f"{inv['name']}: {inv.get('reason', '')[:80]}"
    sometimes = result.get("sometimes") or {}
    outcome.sometimes = sometimes.get("status") == "fail"
    if outcome.exit_code == 3 and not outcome.crash:
        err = (result.get("expectation") or {}).get("harness_error") or "exit 3"
        outcome.crash = str(err)[:120]


def hunt(mutant: Mutant, scenarios: tuple[str, ...], out: Path) -> MutantResult:
    started = time.monotonic()
    runs: list[RunOutcome] = []
    with package_copy(mutant) as pkg:
        for sc in scenarios:
            r = run_one(pkg, sc, out / mutant.id)
            runs.append(r)
            if r.caught_by:
                break
    return MutantResult(mutant, runs, time.monotonic() - started)


def baseline(
    scenarios: tuple[str, ...], seeds: list[int], out: Path, jobs: int
) -> list[RunOutcome]:
    with package_copy(None) as pkg, ThreadPoolExecutor(jobs) as pool:
        futs = [pool.submit(run_one, pkg, sc, out / f"clean-{seed}", seed)
                for seed in seeds for sc in scenarios]  # fmt: skip
        return [f.result() for f in futs]


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--mutants", default="all", help="comma-separated ids, 'all' or 'none'")
    ap.add_argument("--scenarios", default=",".join(SUITE), help="comma-separated scenario names")
    ap.add_argument("--seeds", type=int, default=3, help="seeds of the unmutated suite (0: skip)")
    ap.add_argument("--jobs", type=int, default=2, help="runs at once")
    ap.add_argument("--out", default=None, help="keep the run directories here")
    ap.add_argument("--list", action="store_true", help="list the mutants (each applied) and exit")
    args = ap.parse_args()
    if args.list:
        for m in MUTANTS:
            with package_copy(m):
                print(f"{m.id:22} {m.area:17} {m.what}")
        return 0
    known = {m.id: m for m in MUTANTS}
    ids = (
        list(known)
        if args.mutants == "all"
        else []
        if args.mutants == "none"
        else args.mutants.split(",")
    )
    unknown = [i for i in ids if i not in known]
    if unknown:
        print(f"unknown mutants: {', '.join(unknown)}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    scenarios = tuple(s for s in args.scenarios.split(",") if s)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="l2chaos-detection-"))
    started = time.monotonic()
    print(
        f"{len(ids)} mutants, suite of {len(scenarios)} scenarios on hardened, {args.jobs} at once; runs in {out}"
    )
    results: list[MutantResult] = []
    with ThreadPoolExecutor(args.jobs) as pool:
        for res in pool.map(lambda i: hunt(known[i], scenarios, out), ids):
            results.append(res)
            m = res.mutant
            print(
                f"{m.id:22} {m.area:17} {res.verdict():70} {len(res.runs):2} runs {res.seconds:6.0f} s",
                flush=True,
            )
    if results:
        caught = sum(1 for r in results if r.by_invariant is not None)
        print(
            f"kill rate: {caught}/{len(results)} mutants caught by an invariant ({caught / len(results):.0%})"
        )
    if args.seeds > 0:
        seeds = [1604710 + k for k in range(args.seeds)]
        runs = baseline(scenarios, seeds, out, args.jobs)
        alarms = [r for r in runs if r.caught_by]
        idle = [r for r in runs if not r.met and not r.caught_by]
        for r in alarms:
            print(
                f"false alarm: {r.scenario} seed {r.seed}: {', '.join(r.caught_by)} ({r.run_dir})"
            )
        for r in idle:
            why = "a sometimes rule (the fault reached nothing)" if r.sometimes else r.crash
            print(
                f"not met without an invariant failing: {r.scenario} seed {r.seed}: {why} ({r.run_dir})"
            )
        print(
            f"unmutated suite: {len(runs)} runs over seeds {seeds}: {len(alarms)} false alarm(s) "
            f"(an invariant failed), {len(idle)} run(s) not met otherwise"
        )
    print(f"total {time.monotonic() - started:.0f} s")
    if not args.out:
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
