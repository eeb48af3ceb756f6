"""Coverage: what happened inside each fault window, and the scenario's `sometimes:`.

For each fault window (inject start → heal end, from faults.jsonl) the run record
counts operations by outcome, acknowledged writes, fills, liquidations and the
attempts a guard blocked (also per guard), rejected prices, mode changes and blocks.
The counts appear in every report, so a green run shows the faults reached the risky
paths. A scenario can require it:

    sometimes:
      - {during: db-restart, count: liquidation_attempts, at_least: 1}
      - {during: db-restart, count: liquidations_blocked.readiness_gate, extend: 5s,
         profiles: [hardened]}
      - {during: run, count: fills, at_least: 100}

`during`: a timeline entry's name (its label), its index in the timeline, `all_faults`
(the union of every fault window) or `run` (the whole run). `count`: one of `COUNTERS`
or `liquidations_blocked.<guard>`. `at_least` (default 1) and optionally `at_most`.
`extend`: the window goes on this long after the heal (default 0s). `profiles`: the
rule applies only when one of these profiles ran (default: always). A rule that does
not hold fails the run like an invariant (reported as `sometimes`).

The bridge and rollback paths (`deposits_relayed_again`, `deposits_pending_across_rollback`,
...) are counted by `bridge_paths` (see there what each one is).

`l7_hits` counts the calls a message-level fault acted on (l7.jsonl decisions that hit
and had an effect; docs/l7.md), and `l7_hits.<rule>` those of one fault's rule. Every
message fault the run injected carries an implicit rule, "its own rule hit at least one
call in its window" (`implicit_rules`): a fault that never touched a message proves
nothing, so the run cannot pass on it.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from l2chaos.durations import ALLOWED as DURATION_ALLOWED
from l2chaos.durations import format_duration, parse_duration
from l2chaos.jsonfields import fields_json
from l2chaos.params import Where
from l2chaos.rundir.json_types import JsonObject

from .base import Findings, Verdict
from .bridge_paths import BRIDGE_COUNTERS, bridge_path_times
from .bridge_paths import NEEDS as BRIDGE_NEEDS
from .ops import OPEN, ops_index
from .record import AUDIT, L7, FaultRecord, RunRecord

__all__ = [
    "COUNTERS",
    "Coverage",
    "CoverageWindow",
    "SometimesRule",
    "check_sometimes",
    "compute_coverage",
    "implicit_rules",
    "parse_sometimes",
]

# Counters from events (audit/events.jsonl), blocks and the history.
_EVENT_COUNTERS = {
    "fills": "fill",
    "liquidations": "liquidation",
    "liquidations_blocked": "liquidation_blocked",
    "price_rejected": "price_rejected",
    "mode_changes": "mode_change",
    "orders_accepted": "order_accepted",
    "insurance_covers": "insurance_cover",
    "insurance_shortfalls": "insurance_shortfall",
    "deposits_credited": "deposit_credited",
    "withdrawals": "withdrawal",
    "rollbacks": "rollback",
}
_OP_COUNTERS = ("ops", "ops_ok", "ops_fail", "ops_info", "writes_ok")
COUNTERS = (
    *_OP_COUNTERS,
    *_EVENT_COUNTERS,
    "liquidation_attempts",
    "blocks",
    "l7_hits",
    *BRIDGE_COUNTERS,
)
L7_HITS = "l7_hits"
# Decisions that did nothing to the call: the probability draw missed (hit false) or
# the hit call had nothing to act on.
_L7_NO_EFFECT = "no_effect"
_RULE_KEYS = ("during", "count", "at_least", "at_most", "extend", "profiles")
RUN = "run"
ALL_FAULTS = "all_faults"


@dataclass(frozen=True)
class SometimesRule:
    """Something that must happen at least `at_least` times in a window."""

    during: str  # a timeline label, "all_faults" or "run"
    fault_index: int | None  # the timeline index when `during` names one entry
    count: str
    at_least: int = 1
    at_most: int | None = None
    extend_ns: int = 0
    profiles: tuple[str, ...] | None = None
    why: str = ""  # set on implicit rules: why the harness requires it

    def applies_to(self, profile: str | None) -> bool:
        return self.profiles is None or (profile is not None and profile in self.profiles)

    def text(self) -> str:
        bound = f"at least {self.at_least}"
        if self.at_most is not None:
            bound += f" and at most {self.at_most}"
        where = {RUN: "during the run", ALL_FAULTS: "during the fault windows"}.get(
            self.during, f"during {self.during}"
        )
        ext = f" (+{format_duration(self.extend_ns)} after heal)" if self.extend_ns else ""
        why = f" ({self.why})" if self.why else ""
        return f"{self.count} {bound} {where}{ext}{why}"

    def to_json(self) -> JsonObject:
        return {
            **fields_json(self, omit=("profiles", "why")),
            "profiles": list(self.profiles) if self.profiles is not None else None,
            "text": self.text(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SometimesRule:
        profiles = data.get("profiles")
        return cls(
            during=str(data["during"]),
            fault_index=data.get("fault_index"),
            count=str(data["count"]),
            at_least=int(data.get("at_least", 1)),
            at_most=data.get("at_most"),
            extend_ns=int(data.get("extend_ns", 0)),
            profiles=tuple(profiles) if profiles is not None else None,
        )


def _valid_counter(name: Any) -> bool:
    if not isinstance(name, str):
        return False
    if name in COUNTERS:
        return True
    base, _, guard = name.partition(".")
    return base in ("liquidations_blocked", L7_HITS) and bool(guard)


def parse_sometimes(
    section: Any,
    where: Where,
    fault_labels: Sequence[str],
    profiles: Sequence[str] | None = None,
) -> list[SometimesRule]:
    """Validate the `sometimes:` section against the timeline's labels (in order)."""
    if section is None:
        return []
    if not isinstance(section, Sequence) or isinstance(section, (str, bytes)):
        raise where.error(f"expected a list of {{during, count, at_least}} rules, got {section!r}")
    labels = list(fault_labels)
    choices = [*labels, ALL_FAULTS, RUN]
    out: list[SometimesRule] = []
    for i, item in enumerate(section):
        w = where.child(i)
        if not isinstance(item, Mapping):
            raise w.error(
                f"expected a mapping such as {{during: <fault name>, count: fills, at_least: 1}}, got {item!r}",
                section,
                i,
            )
        for key in item:
            if key not in _RULE_KEYS:
                raise w.child(key).error(
                    f"unknown key {key!r}; allowed: {', '.join(_RULE_KEYS)}", item, key
                )
        for key in ("during", "count"):
            if key not in item:
                raise w.error(f"missing {key!r}", item)
        during = item["during"]
        fault_index: int | None = None
        if isinstance(during, bool) or not isinstance(during, (str, int)):
            raise w.child("during").error(
                f"expected a timeline name, index, {ALL_FAULTS} or {RUN}; got {during!r}",
                item,
                "during",
            )
        if isinstance(during, int):
            if not 0 <= during < len(labels):
                raise w.child("during").error(
                    f"timeline index {during} out of range (the timeline has {len(labels)} entries)",
                    item,
                    "during",
                )
            fault_index, during = during, labels[during]
        elif during in labels:
            fault_index = labels.index(during)
        elif during not in (ALL_FAULTS, RUN):
            raise w.child("during").error(
                f"unknown fault window {during!r}; allowed: {', '.join(choices)}", item, "during"
            )
        count = item["count"]
        if not _valid_counter(count):
            raise w.child("count").error(
                f"unknown counter {count!r}; allowed: {', '.join(COUNTERS)}, "
                "liquidations_blocked.<guard>",
                item,
                "count",
            )
        at_least = _nonneg_int(item, "at_least", w, 1)
        at_most_raw = item.get("at_most")
        at_most = None if at_most_raw is None else _nonneg_int(item, "at_most", w, 0)
        if at_most is not None and at_most < at_least:
            raise w.child("at_most").error(
                f"at_most ({at_most}) is below at_least ({at_least})", item, "at_most"
            )
        extend_ns = 0
        if "extend" in item:
            try:
                extend_ns = parse_duration(item["extend"])
            except ValueError:
                raise w.child("extend").error(
                    f"expected {DURATION_ALLOWED}, got {item['extend']!r}", item, "extend"
                ) from None
            if extend_ns < 0:
                raise w.child("extend").error(
                    f"must not be negative, got {item['extend']!r}", item, "extend"
                )
        rule_profiles: tuple[str, ...] | None = None
        if "profiles" in item:
            raw = item["profiles"]
            if isinstance(raw, str):
                raw = [raw]
            if not isinstance(raw, Sequence) or not raw or not all(isinstance(p, str) for p in raw):
                raise w.child("profiles").error(
                    f"expected a list of profile names, got {raw!r}", item, "profiles"
                )
            if profiles is not None:
                for p in raw:
                    if p not in profiles:
                        raise w.child("profiles").error(
                            f"unknown profile {p!r}; allowed: {', '.join(profiles)}",
                            item,
                            "profiles",
                        )
            rule_profiles = tuple(raw)
        out.append(
            SometimesRule(
                during=str(during),
                fault_index=fault_index,
                count=count,
                at_least=at_least,
                at_most=at_most,
                extend_ns=extend_ns,
                profiles=rule_profiles,
            )
        )
    return out


def _nonneg_int(item: Mapping[str, Any], key: str, w: Where, default: int) -> int:
    v = item.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise w.child(key).error(f"expected a non-negative integer, got {v!r}", item, key)
    return v


# --------------------------------------------------------------------- counting


@dataclass(frozen=True)
class CoverageWindow:
    """A fault window (inject start to heal end, host ns) and what happened in it."""

    fault_id: int
    label: str
    name: str
    target: str
    start_ns: int
    end_ns: int
    healed: bool
    counts: dict[str, int]


@dataclass
class Coverage:
    """Sorted event times per counter, for counts over any window."""

    times: dict[str, array[int]] = field(default_factory=dict)
    run_start_ns: int | None = None
    run_end_ns: int | None = None
    has_history: bool = False
    has_events: bool = False
    has_blocks: bool = False
    has_l7: bool = False
    has_bridge: bool = False
    windows: list[CoverageWindow] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)
    _record: RunRecord | None = None

    def count(self, counter: str, start_ns: int, end_ns: int) -> int | None:
        """How many `counter` things happened in [start, end]; None if the record
        lacks the data for it."""
        if counter in _OP_COUNTERS:
            ops = ops_index(self._record) if self._record is not None else None
            if ops is None:
                return None
            return ops.counts(ops.invoked_between(start_ns, end_ns))[counter]
        if counter == "liquidation_attempts":
            a = self.count("liquidations", start_ns, end_ns)
            b = self.count("liquidations_blocked", start_ns, end_ns)
            return None if a is None or b is None else a + b
        if counter == "blocks":
            if not self.has_blocks:
                return None
        elif counter.partition(".")[0] == L7_HITS:
            if not self.has_l7:
                return None
        elif counter in BRIDGE_COUNTERS:
            if not self.has_bridge:
                return None
        elif not self.has_events:
            return None
        ts = self.times.get(counter)
        if ts is None:
            return 0
        return bisect_right(ts, end_ns) - bisect_left(ts, start_ns)

    def counts(self, start_ns: int, end_ns: int) -> dict[str, int]:
        out: dict[str, int] = {}
        ops = ops_index(self._record) if self._record is not None else None
        if ops is not None:  # one pass over the window's operations for all op counters
            out.update(ops.counts(ops.invoked_between(start_ns, end_ns)))
        names = [c for c in COUNTERS if c not in _OP_COUNTERS]
        names += sorted(k for k in self.times if "." in k)
        for name in names:
            c = self.count(name, start_ns, end_ns)
            if c is not None:
                out[name] = c
        return {k: out[k] for k in [*COUNTERS, *sorted(out)] if k in out}

    def to_json(self) -> JsonObject:
        return {"windows": [fields_json(w) for w in self.windows], "run": self.totals}


def compute_coverage(record: RunRecord) -> Coverage:
    """Counts per fault window and over the whole run."""
    cov = Coverage(_record=record)
    cov.has_history = ops_index(record) is not None
    collected: dict[str, list[int]] = {}
    if record.has(AUDIT.EVENTS):
        cov.has_events = True
        kinds = tuple(_EVENT_COUNTERS.values())
        by_kind = {v: k for k, v in _EVENT_COUNTERS.items()}
        for ev in record.events(kinds=kinds):
            t = ev.host_ts_ns
            if not isinstance(t, int):
                continue
            counter = by_kind[str(ev.kind)]
            collected.setdefault(counter, []).append(t)
            if counter == "liquidations_blocked":
                guard = ev.payload.get("guard")
                if guard:
                    collected.setdefault(f"liquidations_blocked.{guard}", []).append(t)
    if record.has(L7):
        cov.has_l7 = True
        collected[L7_HITS] = []
        for d in record.l7_decisions():
            t = d.t_ns
            if d.hit and d.effect != _L7_NO_EFFECT and t is not None:
                collected[L7_HITS].append(t)
                collected.setdefault(f"{L7_HITS}.{d.rule}", []).append(t)
    if not record.missing(BRIDGE_NEEDS):
        cov.has_bridge = True
        collected.update(bridge_path_times(record))
    if record.has(AUDIT.BLOCKS):
        cov.has_blocks = True
        collected["blocks"] = [b.host_ts_ns for b in record.blocks() if b.host_ts_ns is not None]
    for k, ts in collected.items():
        ts.sort()
        cov.times[k] = array("q", ts)
    start, end = record.run_bounds()
    all_times = [t for ts in cov.times.values() for t in (ts[:1].tolist() + ts[-1:].tolist())]
    ops = ops_index(record)
    if ops is not None and len(ops):
        all_times += [
            min(ops.invoke_t),
            max((t for t in ops.done_t if t < OPEN), default=min(ops.invoke_t)),
        ]
    cov.run_start_ns = start if start is not None else (min(all_times) if all_times else 0)
    cov.run_end_ns = end if end is not None else (max(all_times) if all_times else 0)
    if all_times:  # the run's bounds cover every record, whatever run.json says
        cov.run_start_ns = min(cov.run_start_ns, min(all_times))
        cov.run_end_ns = max(cov.run_end_ns, max(all_times))
    cov.totals = cov.counts(cov.run_start_ns, cov.run_end_ns)
    for fr, s, e in record.fault_windows():
        cov.windows.append(
            CoverageWindow(
                fr.fault_id, fr.label, fr.name, fr.target, s, e, fr.healed, cov.counts(s, e)
            )
        )
    return cov


def _l7_rule(fr: FaultRecord) -> str | None:
    """The L7 proxy rule a message fault added (its inject record's details.rule)."""
    details = fr.details if isinstance(fr.details, dict) else {}
    rule = details.get("rule")
    return rule if isinstance(rule, str) and details.get("link") else None


def implicit_rules(record: RunRecord) -> list[SometimesRule]:
    """One rule per injected message fault: its own rule hit at least one call."""
    return [
        SometimesRule(
            during=fr.label,
            fault_index=fr.fault_id,
            count=f"{L7_HITS}.{rule}",
            why=f"implicit: {fr.name} on {fr.target} must act on a call",
        )
        for fr, _, _ in record.fault_windows()
        if (rule := _l7_rule(fr)) is not None
    ]


def merge_intervals(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping or touching [start, end) intervals joined, sorted."""
    out: list[tuple[int, int]] = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def check_sometimes(
    record: RunRecord, cov: Coverage, rules: Sequence[SometimesRule], profile: str | None
) -> Verdict | None:
    """The `sometimes` verdict: every applicable rule holds (None without rules)."""
    if not rules:
        return None
    found = Findings(100)
    results: list[JsonObject] = []
    checked = 0
    windows = record.fault_windows()
    for rule in rules:
        if not rule.applies_to(profile):
            results.append({"rule": rule.text(), "applies": False})
            continue
        checked += 1
        spans: list[tuple[str, int, int]] = []
        if rule.during == RUN:
            spans = [("run", cov.run_start_ns or 0, cov.run_end_ns or 0)]
        elif rule.during == ALL_FAULTS:
            merged = merge_intervals([(s, e + rule.extend_ns) for _, s, e in windows])
            spans = [("all_faults", s, e) for s, e in merged]
        else:
            matching = [
                (fr, s, e)
                for fr, s, e in windows
                if (rule.fault_index is not None and fr.fault_id == rule.fault_index)
                or (rule.fault_index is None and fr.label == rule.during)
            ]
            if not matching:
                found.add(
                    f"{rule.text()}: fault {rule.during!r} was never injected",
                    rule=rule.text(),
                    during=rule.during,
                )
                results.append({"rule": rule.text(), "applies": True, "ok": False, "seen": None})
                continue
            spans = [(fr.label, s, e + rule.extend_ns) for fr, s, e in matching]
        if rule.during == ALL_FAULTS:
            seen_total: int | None = 0
            for _, s, e in spans:
                c = cov.count(rule.count, s, e)
                seen_total = None if c is None or seen_total is None else seen_total + c
            checks = [
                (
                    "all_faults",
                    spans[0][1] if spans else 0,
                    spans[-1][2] if spans else 0,
                    seen_total,
                )
            ]
            if not spans:
                found.add(f"{rule.text()}: the run had no fault windows", rule=rule.text(), seen=0)
                results.append({"rule": rule.text(), "applies": True, "ok": False, "seen": 0})
                continue
        else:
            checks = [(label, s, e, cov.count(rule.count, s, e)) for label, s, e in spans]
        ok_all = True
        seen_list: list[int | None] = []
        for label, s, e, seen in checks:
            seen_list.append(seen)
            if seen is None:
                ok_all = False
                found.add(
                    f"{rule.text()}: the run record has no data for {rule.count!r}",
                    rule=rule.text(),
                    window=label,
                )
                continue
            if seen < rule.at_least or (rule.at_most is not None and seen > rule.at_most):
                ok_all = False
                found.add(
                    f"{rule.text()}: saw {seen} in {label}",
                    rule=rule.text(),
                    window=label,
                    start_ns=s,
                    end_ns=e,
                    expected_at_least=rule.at_least,
                    expected_at_most=rule.at_most,
                    seen=seen,
                )
        results.append({"rule": rule.text(), "applies": True, "ok": ok_all, "seen": seen_list})
    return Verdict(
        name="sometimes",
        status="fail" if found else "pass",
        checked={"rules": checked},
        violations=found.kept,
        violation_count=found.count,
        details={"rules": results},
        no_work=checked == 0,
        reason="" if checked else "no rule applies to this profile",
    )
