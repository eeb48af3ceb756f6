"""`l2chaos shrink RUN_DIR`: a failed run's schedule shrunk to a minimal replay.

The faults that fired (a nemesis's draws included) become an explicit timeline; the
search (`l2chaos.shrink.search`) runs smaller candidates on the same backend, with the
same seed, profile and stack settings, and keeps the smallest one that still fails the
same invariants. It writes into the run directory:

    shrink/log.jsonl                 one line per candidate run: what ran, the outcome, its run dir
    shrink/candidates/c<N>.yaml      every candidate scenario
    shrink/runs/                     their run directories
    replay/minimal.scenario.yaml     the smallest failing scenario (no nemesis, no triggers)
    replay/bundle.json               what it takes to replay it: seed, profile, switches,
                                     settings, backend, time scale, versions, the search

Exit codes: 0 a minimal scenario was written, 1 the explicit timeline did not fail
again (nothing was written), 2 bad input, 3 the harness broke, 130 interrupted.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from l2chaos.errors import (
    EXIT_BAD_INPUT,
    EXIT_EXPECTATION_FAILED,
    EXIT_HARNESS_BROKE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    InputError,
    Interrupted,
    UsageError,
)
from l2chaos.rundir.scenario import StackUse

from .replay import FailedRun, explicit_timeline, failing_invariants, read_failed_run, scenario_yaml
from .search import Budget, Candidate, Outcome, Search

__all__ = ["ShrinkOptions", "ShrinkResult", "shrink_run"]


@dataclass
class ShrinkOptions:
    max_runs: int = 30
    max_time_s: float = 3600.0
    retries: int = 1
    invariants: Sequence[str] = ()
    scenario_file: Path | None = None
    backend: str | None = None
    allow_exec: bool = False
    allow_targets: Sequence[str] = ()
    progress: bool = True
    stream: TextIO = field(default_factory=lambda: sys.stderr)


@dataclass
class ShrinkResult:
    exit_code: int
    summary: str
    minimal: Path | None = None
    bundle: Path | None = None


class _Session:
    """Runs candidates for real and keeps their record."""

    def __init__(self, run: FailedRun, opts: ShrinkOptions) -> None:
        self.failed = run
        self.opts = opts
        self.dir = run.path / "shrink"
        (self.dir / "candidates").mkdir(parents=True, exist_ok=True)
        self.name = (run.resolved.name or "scenario")[:72] + "-shrunk"
        self.count = 0
        self.failing_dirs: dict[str, Path] = {}
        self.interrupted = False

    def yaml(self, cand: Candidate) -> str:
        return scenario_yaml(
            self.failed,
            cand,
            name=self.name,
            description=(
                f"Shrunk by l2chaos shrink from run {self.failed.run_info.run_id}: "
                f"{len(cand.entries)} fault(s) that still fail {', '.join(self.failed.targets)}."
            ),
        )

    def load(self, text: str, path: Path) -> Any:
        from l2chaos.safety import Trust
        from l2chaos.scenario import load_scenario

        path.write_text(text)
        trust = Trust(allow_exec=self.opts.allow_exec, allow_targets=tuple(self.opts.allow_targets))
        return load_scenario(path, trust=trust)

    def run(self, cand: Candidate) -> Outcome:
        from l2chaos.runner import RunOptions, run_loaded

        self.count += 1
        path = self.dir / "candidates" / f"c{self.count}.yaml"
        record: dict[str, Any] = {
            "candidate": path.name,
            "entries": [e.label for e in cand.entries],
        }
        try:
            scenario = self.load(self.yaml(cand), path)
        except InputError as exc:
            return self._log(record, Outcome.INVALID, error=str(exc))
        opts = RunOptions(
            backend=self.opts.backend,
            out_dir=self.dir / "runs",
            progress=False,
            allow_exec=self.opts.allow_exec,
            allow_targets=tuple(self.opts.allow_targets),
        )
        started = time.monotonic()
        result = run_loaded(scenario, opts)
        record.update(seconds=round(time.monotonic() - started, 1), run_dir=str(result.run_dir))
        if result.exit_code == EXIT_INTERRUPTED:
            self.interrupted = True
            self._log(record, Outcome.BROKE, error=result.error)
            raise Interrupted(result.error or "interrupted")
        if result.exit_code == EXIT_BAD_INPUT:
            return self._log(record, Outcome.INVALID, error=result.error)
        failed = _failed(result.run_dir)
        if result.exit_code == EXIT_HARNESS_BROKE or failed is None:
            return self._log(record, Outcome.BROKE, error=result.error)
        record["failed"] = failed
        if all(t in failed for t in self.failed.targets):
            assert result.run_dir is not None
            self.failing_dirs[cand.key()] = result.run_dir
            return self._log(record, Outcome.FAILS)
        return self._log(record, Outcome.PASSES)

    def _log(self, record: dict[str, Any], outcome: Outcome, error: str | None = None) -> Outcome:
        record.update(outcome=outcome.value, error=error, t_ns=time.time_ns())
        with (self.dir / "log.jsonl").open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        return outcome


def _failed(run_dir: Path | None) -> list[str] | None:
    """The invariants that failed with violations in a candidate's run (None: no verdict)."""
    path = None if run_dir is None else run_dir / "result.json"
    if path is None or not path.is_file():
        return None
    return failing_invariants(json.loads(path.read_text()))


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 60}m{s % 60:02d}s"


class _Progress:
    def __init__(self, opts: ShrinkOptions, budget: Budget) -> None:
        self.opts = opts
        self.budget = budget

    def line(self, text: str) -> None:
        if self.opts.progress:
            self.opts.stream.write(f"[shrink] {text}\n")
            self.opts.stream.flush()

    def __call__(self, step: str, cand: Candidate, outcome: Outcome, attempt: int) -> None:
        again = f" (run {attempt})" if attempt > 1 else ""
        labels = ", ".join(e.label for e in cand.entries) or "no faults"
        self.line(
            f"{self.budget.runs}/{self.opts.max_runs} runs, {_clock(self.budget.elapsed_s())}/"
            f"{_clock(self.opts.max_time_s)}: {step}{again}: {len(cand.entries)} fault(s) "
            f"[{labels}], {_clock(cand.duration_ns / 1e9)} run -> {outcome.value.upper()}"
        )


def shrink_run(run_dir: Path, opts: ShrinkOptions | None = None) -> ShrinkResult:
    opts = opts or ShrinkOptions()
    if opts.max_runs < 1 or opts.max_time_s <= 0:
        raise UsageError("the budget must allow at least one run", field="--max-runs/--max-time")
    failed = read_failed_run(run_dir, invariants=opts.invariants, scenario_file=opts.scenario_file)
    initial = explicit_timeline(failed)
    if not initial.entries:
        raise UsageError(f"no fault fired in {run_dir}: nothing to shrink", field="RUN_DIR")
    session = _Session(failed, opts)
    session.load(session.yaml(initial), session.dir / "candidates" / "explicit.yaml")  # bad: exit 2
    budget = Budget(opts.max_runs, opts.max_time_s)
    progress = _Progress(opts, budget)
    progress.line(
        f"{len(initial.entries)} fault(s) fired in {failed.run_info.run_id}; "
        f"shrinking while {', '.join(failed.targets)} still fail(s)"
    )
    search = Search(run=session.run, budget=budget, retries=opts.retries, report=progress)
    try:
        best = search.shrink(initial)
    except (Interrupted, KeyboardInterrupt):  # Ctrl-C: keep what was found
        session.interrupted = True
        best = search.best
        if best is None:
            raise
    if best is None:
        return ShrinkResult(
            EXIT_EXPECTATION_FAILED,
            f"the explicit timeline of {len(initial.entries)} fault(s) did not fail "
            f"{', '.join(failed.targets)} again in {budget.runs} run(s): nothing to shrink "
            f"(see {session.dir / 'log.jsonl'})",
        )
    minimal, bundle = _write(failed, session, search, initial, best)
    code = EXIT_INTERRUPTED if session.interrupted else EXIT_OK
    stopped = f" (stopped: {search.spent} spent)" if search.spent else ""
    summary = (
        f"shrunk {len(initial.entries)} fault(s) to {len(best.entries)} in {budget.runs} run(s), "
        f"{_clock(budget.elapsed_s())}{stopped}: "
        + (", ".join(f"{e.label} ({e.fault})" for e in best.entries) or "no faults")
        + f"\nminimal scenario: {minimal}\nreplay bundle: {bundle}"
    )
    return ShrinkResult(code, summary, minimal, bundle)


def _write(
    failed: FailedRun, session: _Session, search: Search, initial: Candidate, best: Candidate
) -> tuple[Path, Path]:
    out = failed.path / "replay"
    out.mkdir(exist_ok=True)
    minimal = out / "minimal.scenario.yaml"
    minimal.write_text(session.yaml(best))
    stack = failed.resolved.stack or StackUse()
    bundle = {
        "format": "l2chaos-replay/1",
        "scenario": minimal.name,
        "replay": f"l2chaos run {minimal}",
        "original_run": failed.run_info.run_id,
        "original_run_dir": str(failed.path),
        "invariants": list(failed.targets),
        "seed": failed.resolved.seed,
        "profile": failed.profile,
        "switches": stack.switches,
        "settings": stack.settings,
        "stack": {"ref": stack.ref, "name": stack.name, "path": stack.path},
        "backend": failed.run_info.backend,
        "time_scale": failed.scale,
        "versions": failed.run_info.versions,
        "faults": {"fired": len(initial.entries), "minimal": len(best.entries)},
        "entries": [e.label for e in best.entries],
        "failed_in": str(session.failing_dirs.get(best.key(), "")) or None,
        "search": {
            "runs": search.budget.runs,
            "seconds": round(search.budget.elapsed_s(), 1),
            "max_runs": search.budget.max_runs,
            "max_time_s": search.budget.max_time_s,
            "retries": search.retries,
            "stopped_early": search.spent,
            "log": str(session.dir / "log.jsonl"),
        },
    }
    path = out / "bundle.json"
    path.write_text(json.dumps(bundle, indent=2) + "\n")
    return minimal, path
