"""`check_run`: every checker, the coverage counts and the expectation over one run.

`l2chaos check RUN_DIR` and the runner call `check_run(run_dir)`, then
`l2chaos.report.write_reports(run_dir, outcome)`. It reads scenario.resolved.json
and run.json as the types the runner wrote them (`l2chaos.rundir`: `ResolvedScenario`,
`RunInfo`; see docs/architecture.md), never the live stack.
"""

from __future__ import annotations

import gc
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from l2chaos.errors import UsageError
from l2chaos.params import Where, from_json
from l2chaos.registry import checkers as checker_registry
from l2chaos.rundir.json_types import JsonObject, JsonValue, as_list, as_object, json_object
from l2chaos.rundir.run_info import RunInfo
from l2chaos.rundir.scenario import SCENARIO_JSON, CheckerUse

from .base import Checker, Verdict
from .coverage import (
    Coverage,
    CoverageWindow,
    SometimesRule,
    check_sometimes,
    compute_coverage,
    implicit_rules,
)
from .expectations import Expectation, ExpectationResult, evaluate
from .record import FaultRecord, RecordError, RunRecord
from .replay import share_replay

__all__ = ["CheckOutcome", "FaultSummary", "bulk_reading", "check_run", "run_checker"]


@dataclass
class CheckOutcome:
    """Everything the reports show: verdicts, coverage, faults, the expectation."""

    run_dir: Path
    scenario: str
    profile: str | None
    backend: str | None
    seed: int | None
    run_id: str | None
    verdicts: list[Verdict]
    sometimes: Verdict | None
    # None when the record could not be read for it (then `coverage_error` says why)
    coverage: Coverage | None
    expectation: ExpectationResult
    faults: list[FaultSummary]
    t0_ns: int | None = None
    end_ns: int | None = None
    seconds: float = 0.0
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    coverage_error: str | None = None
    # The record it was checked from (its derived data is reused by the reports).
    record: RunRecord | None = field(default=None, repr=False, compare=False)

    @property
    def exit_code(self) -> int:
        return self.expectation.exit_code

    @property
    def verdict(self) -> str:
        """`pass` when the expectation of the profile that ran is met."""
        return "pass" if self.expectation.met else "fail"

    def all_verdicts(self) -> list[Verdict]:
        return [*self.verdicts, *([self.sometimes] if self.sometimes is not None else [])]

    @property
    def windows(self) -> list[CoverageWindow]:
        """The coverage per fault window (none when it could not be counted)."""
        return self.coverage.windows if self.coverage is not None else []

    @property
    def run_counts(self) -> dict[str, int]:
        """The coverage over the whole run."""
        return self.coverage.totals if self.coverage is not None else {}

    def coverage_json(self) -> JsonObject:
        if self.coverage is None:
            return {"error": self.coverage_error, "windows": [], "run": {}}
        return self.coverage.to_json()


@dataclass(frozen=True)
class FaultSummary:
    """One timeline entry as the reports show it: its fault log record, and what the
    check derives from it: when it was due, injected and healed (seconds from time
    zero) and its recovery time (from `recoverability`)."""

    record: FaultRecord
    scheduled_at: float | None
    injected_at: float | None
    healed_at: float | None
    recovery_s: JsonValue
    recovery_status: JsonValue

    def to_json(self) -> JsonObject:
        """result.json's `faults[]` entry (docs/result-schema.md)."""
        r = self.record
        return json_object(
            {
                "fault_id": r.fault_id,
                "label": r.label,
                "name": r.name,
                "target": r.target,
                "scheduled_at": self.scheduled_at,
                "injected_at": self.injected_at,
                "healed_at": self.healed_at,
                "injected_t_ns": r.inject_t_ns,
                "healed_t_ns": r.heal_done_t_ns,
                "lateness_ms": r.lateness_ms,
                "trigger": r.trigger,
                "block": r.block,
                "target_block": r.target_block,
                "lateness_blocks": r.lateness_blocks,
                "missed": r.missed,
                "inject_ok": r.inject_ok,
                "heal_ok": r.heal_ok,
                "errors": r.errors,
                "recovery_s": self.recovery_s,
                "recovery_status": self.recovery_status,
            }
        )


def run_checker(checker: Checker[object], record: RunRecord) -> Verdict:
    """Run one checker: not_applicable when its files are missing; `error` (the harness
    broke) when the record cannot be read or the checker crashes."""
    missing = record.missing(checker.needs)
    started = time.perf_counter()
    if missing:
        v = checker.not_applicable(
            f"the run record has no {', '.join(missing)} (the stack or harness did not provide it)"
        )
    else:
        try:
            v = checker.check(record)
        except RecordError as exc:
            v = Verdict(checker.name, "error", reason=str(exc), params=checker.params_json())
        except Exception as exc:
            v = Verdict(
                checker.name,
                "error",
                reason=f"the checker crashed: {type(exc).__name__}: {exc}",
                params=checker.params_json(),
                details={"traceback": traceback.format_exc(limit=8)},
            )
    v.seconds = time.perf_counter() - started
    return v


def _instantiate(uses: list[CheckerUse] | None, source: Path) -> list[Checker[object]]:
    registry = checker_registry()
    if uses is None:
        uses = [CheckerUse(n, {}) for n in registry]
    out: list[Checker[object]] = []
    for i, use in enumerate(uses):
        cls = registry.get(use.name)
        if cls is None:
            raise UsageError(
                f"unknown invariant {use.name!r} (a plugin that is not installed?); known: "
                f"{', '.join(registry)}",
                file=source,
                field=f"invariants[{i}]",
            )
        where = Where(str(source), f"invariants[{i}].params")
        out.append(cls(from_json(cls.params_model(), use.params, where)))
    return out


def _faults_summary(
    record: RunRecord, verdicts: list[Verdict], t0: int | None
) -> list[FaultSummary]:
    recovery: dict[int, Mapping[str, JsonValue]] = {}
    for v in verdicts:
        if v.name == "recoverability":
            for row in map(as_object, as_list(v.details.get("recoveries"))):
                fault_id = row.get("fault_id")
                if isinstance(fault_id, int):
                    recovery[fault_id] = row

    def rel(t: int | None) -> float | None:
        return None if t is None or t0 is None else round((t - t0) / 1e9, 6)

    def summary(fr: FaultRecord) -> FaultSummary:
        rec = recovery.get(fr.fault_id, {})
        return FaultSummary(
            record=fr,
            scheduled_at=None if fr.scheduled_ns is None else round(fr.scheduled_ns / 1e9, 6),
            injected_at=rel(fr.inject_t_ns),
            healed_at=rel(fr.heal_done_t_ns),
            recovery_s=rec.get("recovery_s"),
            recovery_status=rec.get("status"),
        )

    return [summary(fr) for fr in record.faults()]


# run.json phases of a run whose record is whole: the wind-down finished (and then,
# maybe, the verdict was given). Older records say only "checked".
COMPLETE_PHASES = ("finished", "checked")


def _incomplete(info: RunInfo) -> str | None:
    """Why the run has no verdict at all, or None: it was aborted (its error), or its
    run.json never reached the end of the wind-down (killed, or crashed by a bug)."""
    if info.phase == "aborted":
        return info.error or "the run was aborted"
    if info.phase not in COMPLETE_PHASES:
        return (
            f"the run is incomplete (run.json says phase {info.phase!r}: it was killed or crashed "
            "before its wind-down finished); no verdict"
        )
    return None


def _harness_error(info: RunInfo) -> str | None:
    """What run.json says broke during the run: `harness_error`, `problems` (a list of
    what went wrong: a fault that could not be injected or healed, ...)."""
    return info.harness_error or ("; ".join(info.problems) if info.problems else None)


@contextmanager
def bulk_reading() -> Iterator[None]:
    """No cyclic GC while millions of records are read: the collector would walk every
    object the indexes hold again and again (30-40% of the time on a 1M-op history),
    and the checkers create no reference cycles worth collecting meanwhile."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def check_run(run_dir: Path | str, *, profile: str | None = None) -> CheckOutcome:
    """Check a finished run directory offline. Raises UsageError (exit 2) if it is not
    a run directory; every other problem ends up in the outcome (exit 1 or 3)."""
    with bulk_reading():
        return _check_run(Path(run_dir), profile)


def _check_run(run_dir: Path, profile: str | None) -> CheckOutcome:
    started = time.perf_counter()
    path = Path(run_dir)
    if not path.is_dir():
        raise UsageError("not a directory (expected a run directory under runs/)", file=path)
    record = RunRecord(path)
    if not record.has(SCENARIO_JSON):
        raise UsageError(
            f"not a run directory: {SCENARIO_JSON} is missing (the runner writes it first)",
            file=path,
        )
    try:
        scenario = record.scenario
        info = record.run_info
    except RecordError as exc:
        raise UsageError(str(exc)) from None
    checkers = _instantiate(scenario.invariants, path / SCENARIO_JSON)
    incomplete = _incomplete(info)
    harness_error = incomplete or _harness_error(info)
    if incomplete is not None:  # a partial record gives no verdict, not even a pass
        verdicts = [c.not_applicable(f"no verdict: {incomplete}") for c in checkers]
    else:
        share_replay(record, (c.name for c in checkers))
        verdicts = [run_checker(c, record) for c in checkers]
    cov: Coverage | None = None
    cov_error: str | None = None
    sometimes: Verdict | None = None
    ran_profile = profile or scenario.profile or info.profile
    rules = [SometimesRule.from_json(r) for r in scenario.sometimes]
    try:
        cov = compute_coverage(record)
        rules += implicit_rules(record)
        if incomplete is None:
            sometimes = check_sometimes(record, cov, rules, ran_profile)
    except RecordError as exc:
        cov, cov_error = None, str(exc)
        if rules:
            sometimes = Verdict("sometimes", "error", reason=str(exc))
    raw_expect = scenario.expect.get(ran_profile) if ran_profile is not None else None
    expectation = Expectation.from_json(raw_expect) if raw_expect is not None else None
    if sometimes is not None and sometimes.status == "error" and harness_error is None:
        harness_error = f"sometimes: {sometimes.reason}"
    result = evaluate(expectation, ran_profile, verdicts, sometimes, harness_error)
    if info.phase == "aborted" and info.exit_code is not None:
        # an aborted run has no verdict; the record keeps the exit code its process gave
        # (130 interrupted, 2 input found bad once the stack was up, 3 broken)
        result.exit_code = info.exit_code
    t0 = info.t0_ns
    start_ns, end_ns = record.run_bounds()
    try:
        faults = _faults_summary(record, verdicts, start_ns if t0 is None else t0)
    except RecordError as exc:
        faults = []
        result.harness_error = result.harness_error or str(exc)
        result.exit_code, result.met = 3, False
    return CheckOutcome(
        run_dir=path,
        scenario=scenario.name or path.name,
        profile=ran_profile,
        backend=scenario.backend if info.backend is None else info.backend,
        seed=scenario.seed if info.seed is None else info.seed,
        run_id=info.run_id or path.name,
        verdicts=verdicts,
        sometimes=sometimes,
        coverage=cov,
        coverage_error=cov_error,
        expectation=result,
        faults=faults,
        t0_ns=start_ns if t0 is None else t0,
        end_ns=end_ns,
        seconds=time.perf_counter() - started,
        description=scenario.description,
        tags=scenario.tags,
        record=record,
    )
