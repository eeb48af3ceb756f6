"""The terminal summary: one line per invariant with its counts, the worst violations,
the recovery time of each fault, the coverage per fault window, the expectation and
the path of the report. Also written to summary.txt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from l2chaos.invariants.base import Verdict
from l2chaos.invariants.check import CheckOutcome, FaultSummary

__all__ = ["render_summary"]

_STATUS = {"pass": "PASS", "fail": "FAIL", "not_applicable": "N/A ", "error": "ERR "}
_SHOWN_PER_INVARIANT = 3
_SHOWN_TOTAL = 10
_COVERAGE_KEYS = (
    "ops",
    "ops_info",
    "fills",
    "liquidations",
    "liquidations_blocked",
    "blocks",
    "l7_hits",  # calls the message-level faults acted on
)


def _counts(v: Verdict) -> str:
    return ", ".join(f"{k} {n}" for k, n in v.checked.items()) or "-"


def _mark(role: str | None, satisfied: bool | None, v: Verdict) -> str:
    if role == "must_be_violated":
        return "expected violated: yes" if satisfied else "expected violated: NO"
    if role == "reported":
        return "reported"
    if v.no_work:
        return "no work"
    return ""


def _line(v: Verdict, role: str | None, satisfied: bool | None, width: int) -> str:
    status = _STATUS.get(v.status, v.status)
    tail = []
    if v.total_violations:
        tail.append(f"{v.total_violations} violation(s)")
    mark = _mark(role, satisfied, v)
    if mark:
        tail.append(mark)
    if v.status in ("not_applicable", "error") or (v.status == "fail" and not v.total_violations):
        tail.append(v.reason)
    extra = f"  [{'; '.join(t for t in tail if t)}]" if tail else ""
    return f"  {status}  {v.name:<{width}}  {_counts(v)}{extra}"


def _fault_line(f: FaultSummary) -> str:
    """When a fault fired (and on what trigger), how late, and its recovery."""
    r = f.record
    trig = r.trigger or {}
    if r.missed:
        return f"never fired ({trig.get('text')}): {r.missed}"
    state = f.recovery_status or ("healed" if r.heal_ok else "not healed")
    fired = ""
    if trig.get("kind") not in (None, "time"):
        fired = f" on {trig.get('text')}"
    if r.block is not None:
        fired += f", block {r.block}"
    if r.lateness_blocks is not None:
        fired += f" ({r.lateness_blocks} blocks late)"
    return (
        f"at {_fmt_s(f.injected_at)}{fired}, late {r.lateness_ms or 0:.1f}ms, "
        f"recovery {_fmt_s(f.recovery_s)} ({state})"
    )


def _fmt_s(x: Any) -> str:
    return "-" if x is None else f"{float(x):.2f}s"


def render_summary(outcome: CheckOutcome, run_dir: Path | str | None = None) -> str:
    exp = outcome.expectation
    run_path = Path(run_dir) if run_dir is not None else outcome.run_dir
    lines = [
        f"l2chaos {outcome.scenario}: profile {outcome.profile or '-'}, backend "
        f"{outcome.backend or '-'}, seed {outcome.seed}",
        "invariants:",
    ]
    verdicts = outcome.all_verdicts()
    width = max((len(v.name) for v in verdicts), default=10)
    for v in verdicts:
        lines.append(_line(v, exp.roles.get(v.name), exp.satisfied.get(v.name), width))

    failing = [v for v in verdicts if v.violations]
    failing.sort(key=lambda v: (exp.roles.get(v.name) != "must_hold", -v.total_violations))
    shown = 0
    if failing:
        lines.append("worst violations:")
        for v in failing:
            for viol in v.violations[:_SHOWN_PER_INVARIANT]:
                if shown >= _SHOWN_TOTAL:
                    break
                lines.append(f"  {v.name}: {viol.message}")
                shown += 1
            more = v.total_violations - min(len(v.violations), _SHOWN_PER_INVARIANT)
            if more > 0 and shown < _SHOWN_TOTAL:
                lines.append(f"  {v.name}: ... and {more} more")

    if outcome.faults:
        lines.append("faults (injected at, lateness, recovery):")
        for f in outcome.faults:
            r = f.record
            lines.append(f"  {r.label} ({r.name} -> {r.target or '-'}): {_fault_line(f)}")

    windows = outcome.windows
    run_totals = outcome.run_counts
    # l7_hits only where message faults acted (one that hit nothing fails `sometimes`)
    keys = [k for k in _COVERAGE_KEYS if k != "l7_hits" or run_totals.get(k)]
    if windows:
        lines.append("coverage per fault window:")
        for w in windows:
            text = ", ".join(f"{k} {w.counts[k]}" for k in keys if k in w.counts)
            lines.append(f"  {w.label}: {text or 'no data'}")
    if run_totals:
        text = ", ".join(f"{k} {run_totals[k]}" for k in keys if k in run_totals)
        lines.append(f"coverage over the run: {text}")

    verdict = "MET" if exp.met else "NOT MET"
    lines.append(f"expectation ({exp.text}): {verdict}, exit code {exp.exit_code}")
    for p in exp.problems:
        lines.append(f"  - {p}")
    if exp.harness_error:
        lines.append(f"  harness error: {exp.harness_error}")
    lines.append(f"report: {run_path / 'report.html'}")
    return "\n".join(lines)
