"""A failed run as material for shrinking: which invariants failed, the faults that
actually fired as an explicit timeline (a nemesis's draws become entries of their own,
from the records it writes), and candidate scenarios written back as YAML that replays
without the nemesis.

The scenario text comes from `scenario.source.yaml` (the runner keeps a copy of the file
that ran), with the run's `--set` overrides applied; the seed, profile, time scale and
backend that ran are pinned.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from l2chaos.errors import InputError, UsageError
from l2chaos.registry import faults as fault_registry
from l2chaos.rundir.run_info import RUN_JSON, RunInfo
from l2chaos.rundir.scenario import SCENARIO_JSON, ResolvedScenario
from l2chaos.scenario import apply_overrides
from l2chaos.yamlsrc import load_yaml_text

from .search import Candidate, Entry

__all__ = ["SOURCE_FILE", "FailedRun", "explicit_timeline", "read_failed_run", "scenario_yaml"]

SOURCE_FILE = "scenario.source.yaml"
NEMESIS = "nemesis.random"
_WINDOW_STEP_NS = 100_000_000


@dataclass(frozen=True)
class FailedRun:
    path: Path
    resolved: ResolvedScenario
    run_info: RunInfo
    result: Mapping[str, Any]
    doc: Mapping[str, Any]  # the scenario as it ran (overrides applied), plain YAML values
    targets: tuple[str, ...]  # the invariants a candidate must fail again

    @property
    def scale(self) -> float:
        return self.resolved.time_scale or 1.0

    @property
    def profile(self) -> str | None:
        return self.run_info.profile or self.resolved.profile


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {exc}", field="RUN_DIR") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} is not a JSON object", field="RUN_DIR")
    return data


def failing_invariants(result: Mapping[str, Any]) -> list[str]:
    """Invariants that failed with at least one violation (a vacuous failure caught nothing)."""
    return [
        str(i["name"])
        for i in result.get("invariants") or []
        if i.get("status") == "fail" and int(i.get("violation_count") or 0) > 0
    ]


def read_failed_run(
    run_dir: Path, *, invariants: Sequence[str] = (), scenario_file: Path | None = None
) -> FailedRun:
    if not (run_dir / "scenario.resolved.json").is_file():
        raise UsageError(
            f"{run_dir} is not a run directory (no scenario.resolved.json)", field="RUN_DIR"
        )
    if not (run_dir / "result.json").is_file():
        raise UsageError(
            f"{run_dir} has no result.json: the run was not checked (l2chaos check RUN_DIR)",
            field="RUN_DIR",
        )
    resolved = ResolvedScenario.from_json(_json(run_dir / SCENARIO_JSON), run_dir / SCENARIO_JSON)
    result = _json(run_dir / "result.json")
    failing = failing_invariants(result)
    if not failing:
        raise UsageError(
            f"nothing to shrink: no invariant failed with a violation in {run_dir}", field="RUN_DIR"
        )
    for name in invariants:
        if name not in failing:
            raise UsageError(
                f"invariant {name!r} did not fail in this run; failed: {', '.join(failing)}",
                field="--invariant",
            )
    source = scenario_file or run_dir / SOURCE_FILE
    if not source.is_file():
        raise UsageError(
            f"{run_dir} has no {SOURCE_FILE} (the scenario as it ran); give it with --scenario FILE",
            field="--scenario",
        )
    doc = load_yaml_text(source.read_text(encoding="utf-8"), str(source))
    if not isinstance(doc, dict):
        raise InputError("expected a scenario mapping", file=str(source))
    apply_overrides(doc, resolved.overrides, str(source))
    return FailedRun(
        path=run_dir,
        resolved=resolved,
        run_info=RunInfo.from_json(_json(run_dir / RUN_JSON), run_dir / RUN_JSON),
        result=result,
        doc=_plain(doc),
        targets=tuple(invariants) or tuple(failing),
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    return value


# ------------------------------------------------------------------------ the faults that fired


def _records(run: FailedRun) -> list[dict[str, Any]]:
    path = run.path / "faults.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def explicit_timeline(run: FailedRun) -> Candidate:
    """The faults that fired, at the times they fired, as a timeline without triggers
    or nemesis (times and windows as written, before the run's time scale)."""
    t0 = run.run_info.t0_ns or 0
    raw = run.doc.get("timeline") or []
    entries: list[Entry] = []
    records = _records(run)
    for i, item in enumerate(run.resolved.timeline):
        index = item.get("index")
        if not isinstance(index, int):
            raise UsageError(
                f"timeline[{i}]: expected an integer index, got {index!r}",
                file=run.path / SCENARIO_JSON,
            )
        mine = [r for r in records if r.get("fault_id") == index]
        source = raw[index] if index < len(raw) else {}
        if item["fault"] == NEMESIS:
            entries += _draws(run, source, mine, t0, len(entries))
            continue
        inject = next((r for r in mine if r.get("action") == "inject"), None)
        if inject is None:
            continue  # never fired
        entries.append(
            Entry(
                label=str(item["label"]),
                fault=str(item["fault"]),
                at_ns=_unscaled(int(inject["t_ns"]) - t0, run.scale),
                for_ns=_for(source, None, run.scale),
                target=source.get("target"),
                params=dict(source.get("with") or {}),
            )
        )
    entries.sort(key=lambda e: e.at_ns)
    duration = _unscaled(int(run.resolved.duration_ns or 0), run.scale)
    return Candidate(tuple(entries), duration)


def _draws(
    run: FailedRun, source: Mapping[str, Any], records: Sequence[Mapping[str, Any]], t0: int, n: int
) -> list[Entry]:
    """A nemesis's draws, from its `note` records (step inject / heal)."""
    catalogue = (source.get("with") or {}).get("faults") or []
    notes = [r for r in records if r.get("action") == "note"]
    out: list[Entry] = []
    for i, note in enumerate(notes):
        d = note.get("details") or {}
        if d.get("step") != "inject" or d.get("error"):
            continue
        entry = _catalogue_entry(catalogue, d)
        if entry is None:
            continue
        started = int(d.get("started_t_ns") or note["t_ns"])
        heal = next(
            (
                h
                for h in notes[i + 1 :]
                if (h.get("details") or {}).get("step") == "heal"
                and (h.get("details") or {}).get("fault") == d.get("fault")
            ),
            None,
        )
        hold = d.get("hold_ns")
        if hold is None and heal is not None:
            hold = int(heal["t_ns"]) - started
        out.append(
            Entry(
                label=f"draw{n + len(out) + 1}-{d.get('fault')}",
                fault=str(entry["fault"]),
                at_ns=_unscaled(started - t0, run.scale),
                for_ns=_for(entry, None if hold is None else int(hold), run.scale),
                target=entry.get("target"),
                params=dict(entry.get("with") or {}),
            )
        )
    return out


def _catalogue_entry(catalogue: Sequence[Any], note: Mapping[str, Any]) -> Mapping[str, Any] | None:
    index = note.get("entry")
    if isinstance(index, int) and 0 <= index < len(catalogue):
        return dict(catalogue[index])
    for entry in catalogue:  # records of an older nemesis: by fault and target
        target = entry.get("target")
        shown = ", ".join(target) if isinstance(target, list) else (target or "-")
        if entry.get("fault") == note.get("fault") and shown == note.get("target"):
            return dict(entry)
    return None


def _for(entry: Mapping[str, Any], hold_ns: int | None, scale: float) -> int | None:
    """The window to write: as the entry gave it; else what the fault needs: nothing at
    an instant or when its parameters imply it (a restart race's downtime), else the
    time it was held."""
    from l2chaos.durations import parse_duration
    from l2chaos.faults.base import Fault, Window

    if entry.get("for") is not None:
        return parse_duration(str(entry["for"]))
    cls = fault_registry().get(str(entry.get("fault")))
    if cls is None or cls.window is Window.INSTANT or hold_ns is None:
        return None
    if cls.implied_duration is not Fault.implied_duration:
        return None
    step = _WINDOW_STEP_NS
    return max(step, round(_unscaled(hold_ns, scale) / step) * step)


def _unscaled(ns: int, scale: float) -> int:
    return max(0, round(ns / scale / 10_000_000) * 10_000_000)  # 10 ms


# ------------------------------------------------------------------------ writing


def _seconds(ns: int) -> str:
    text = f"{ns / 1e9:.3f}".rstrip("0").rstrip(".")
    return f"{text}s"


def _entry_yaml(e: Entry) -> dict[str, Any]:
    out: dict[str, Any] = {"name": e.label, "at": _seconds(e.at_ns), "fault": e.fault}
    if e.target is not None:
        out["target"] = e.target
    if e.for_ns is not None:
        out["for"] = _seconds(e.for_ns)
    if e.params:
        out["with"] = dict(e.params)
    return out


def _stack_ref(run: FailedRun, stack: Mapping[str, Any]) -> str:
    """The stack as a name when it is a registered one, else its absolute folder."""
    from l2chaos.registry import stack_files

    ref = str(stack.get("ref"))
    if ref in stack_files():
        return ref
    info = run.resolved.stack
    return str(Path(info.path if info is not None and info.path else ref).parent)


def scenario_yaml(run: FailedRun, cand: Candidate, *, name: str, description: str) -> str:
    doc = dict(run.doc)
    stack = doc.get("stack")
    stack = dict(stack) if isinstance(stack, Mapping) else {"ref": stack}
    stack["ref"] = _stack_ref(run, stack)
    if run.profile is not None:
        stack["profile"] = run.profile
    invariants = [
        i
        for i in (doc.get("invariants") or list(run.targets))
        if (next(iter(i)) if isinstance(i, Mapping) else i) in run.targets
    ]
    doc.update(
        name=name,
        description=description,
        seed=int(run.resolved.seed or doc.get("seed") or 1),
        stack=stack,
        backend=str(run.run_info.backend or doc.get("backend") or "auto"),
        duration=_seconds(cand.duration_ns),
        time_scale=run.scale,
        timeline=[_entry_yaml(e) for e in cand.entries],
        invariants=invariants,
        expect={run.profile or "default": _expectation(run)},
    )
    doc.pop("sometimes", None)  # they named the original entries; the invariant is the proof
    if run.profile is None:
        doc.pop("expect")
    return "# l2chaos: scenario\n" + yaml.safe_dump(doc, sort_keys=False, allow_unicode=False)


def _expectation(run: FailedRun) -> dict[str, Any]:
    """What the original expected of these invariants on this profile: a known, expected
    violation stays `violated` (replaying it is met); otherwise `all_hold`, so the
    replay fails until the bug is fixed."""
    expect = (run.doc.get("expect") or {}).get(run.profile or "") or {}
    violated = expect.get("violated") or []
    if all(t in violated for t in run.targets):
        return {"violated": list(run.targets)}
    return {"all_hold": True}
