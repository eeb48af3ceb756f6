"""recoverability: after each fault heals, and after each spike of the open-loop load
(`load.rate` shape `spike`) ends, health, block production and an order round-trip are
back within `rto`; the measured recovery time of every one is reported even when it
passes.

From probes.jsonl (sampled every 250 ms by default) and faults.jsonl. Recovery is
measured from the end of the heal, or, when other faults are still active then, from
the moment the last of them (transitively overlapping) has healed. The stack has
recovered at the first sample time by which all three have been seen after that point:
every service healthy and ready, block production (the height rising between two
samples after the heal: after a rollback the chain is lower than before it, and
production, not the old height, is what must come back), and a successful order
round-trip. A signal the stack does not probe at all (no block-height or order probe
in its stack file) is not required; the details say which signals were used. A fault whose heal failed is a violation; so is one that
never recovered while the run went on for at least `rto` after it. If the run ended
less than `rto` after the heal without a recovery, that fault cannot be judged
(reported, not checked). A load spike is measured like a fault healed at the spike's end
(pushed past faults still active then) and counted in `checked.load_spikes`. Work = faults injected plus load spikes.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from typing import ClassVar

from l2chaos.jsonfields import fields_json
from l2chaos.params import Duration, param, params
from l2chaos.rundir.json_types import JsonObject

from .base import Checker, Findings, Verdict
from .record import FAULTS, PROBES, FaultRecord, RunRecord


@dataclass
class _Probes:
    t: list[int]
    healthy: list[bool]
    height: list[int | None]
    order_ok: list[bool | None]  # None: no order probe in that sample

    @property
    def has_height(self) -> bool:
        return any(h is not None for h in self.height)

    @property
    def has_order(self) -> bool:
        return any(o is not None for o in self.order_ok)


@dataclass
class _Measured:
    """How long after the start each signal took to come back (s), and all of them."""

    status: str
    recovery_s: float | None = None
    needed: list[str] = field(default_factory=list)
    health_s: float | None = None
    blocks_s: float | None = None
    order_s: float | None = None

    def missing(self) -> list[str]:
        took = {"health": self.health_s, "blocks": self.blocks_s, "order": self.order_s}
        return [k for k in self.needed if took[k] is None]


@dataclass
class _Recovery:
    """A row of the details: a fault's (`fault_id`) or a load spike's (`spike_s`)."""

    label: str
    name: str
    target: str | None
    fault_id: int | None = None
    spike_s: float | None = None
    status: str | None = None
    measured_from_ns: int | None = None
    measured: _Measured | None = None

    def to_json(self) -> JsonObject:
        out: JsonObject = {
            **({"fault_id": self.fault_id} if self.spike_s is None else {}),
            "label": self.label,
            "name": self.name,
            "target": self.target,
            **({"spike_s": self.spike_s} if self.spike_s is not None else {}),
            "recovery_s": None,
        }
        if self.measured_from_ns is not None:
            out["measured_from_ns"] = self.measured_from_ns
        if self.measured is not None:
            out.update(fields_json(self.measured))
        if self.status is not None:
            out["status"] = self.status
        return out


def load_probes(record: RunRecord) -> _Probes:
    def compute() -> _Probes:
        rows = [(s.t_ns, s.healthy, s.block_height, s.order_ok) for s in record.samples()]
        rows.sort(key=lambda r: r[0])
        return _Probes(
            t=[r[0] for r in rows],
            healthy=[r[1] for r in rows],
            height=[r[2] for r in rows],
            order_ok=[r[3] for r in rows],
        )

    return record.memo("probes", compute)


def recovery_start(fr: FaultRecord, windows: list[tuple[FaultRecord, int, int]]) -> int:
    """The heal end, pushed past every other fault still active then (transitively)."""
    assert fr.heal_done_t_ns is not None
    t = fr.heal_done_t_ns
    changed = True
    while changed:
        changed = False
        for other, s, e in windows:
            if other.fault_id != fr.fault_id and s <= t < e:
                t, changed = e, True
    return t


@params
class RecoverabilityParams:
    rto: Duration = param(Duration.of(s=30), "recovery time objective")


class Recoverability(Checker[RecoverabilityParams]):
    name = "recoverability"
    summary = (
        "After each fault heals (and each load spike ends), health, block production and an "
        "order round-trip are back within `rto`; the recovery time of each is reported."
    )
    needs: ClassVar[tuple[str, ...]] = (FAULTS, PROBES)

    def check(self, record: RunRecord) -> Verdict:
        rto_ns = self.p.rto.ns
        probes = load_probes(record)
        windows = record.fault_windows()
        found = self.findings()
        per_fault: list[_Recovery] = []
        injected = judged = 0
        for fr in record.faults():
            if not fr.injected:
                continue
            injected += 1
            row = _Recovery(fr.label, fr.name, fr.target, fault_id=fr.fault_id)
            per_fault.append(row)
            base = {"fault": fr.label, "name": fr.name, "target": fr.target}
            if fr.heal_done_t_ns is None:
                found.add(
                    f"{fr.label}: never healed",
                    **base,
                    injected_t_ns=fr.inject_t_ns,
                    errors=fr.errors,
                )
                judged += 1
                row.status = "never healed"
                continue
            if not fr.heal_ok:
                found.add(
                    f"{fr.label}: the heal failed ({'; '.join(fr.errors) or 'no error text'})",
                    **base,
                    healed_t_ns=fr.heal_done_t_ns,
                )
                judged += 1
                row.status = "heal failed"
                continue
            start = recovery_start(fr, windows)
            judged += self._judge(row, start, probes, found)
        spikes = judged_spikes = 0
        per_spike: list[_Recovery] = []
        for i, (s_ns, e_ns) in enumerate(record.load_spikes(), 1):
            spikes += 1
            label = f"load-spike-{i}" if i > 1 else "load-spike"
            row = _Recovery(label, "load.rate spike", None, spike_s=round((e_ns - s_ns) / 1e9, 3))
            per_spike.append(row)
            start = max([e_ns] + [e for _, s, e in windows if s <= e_ns < e])
            judged_spikes += self._judge(row, start, probes, found)
        checked = {"faults": judged}
        if spikes:
            checked["load_spikes"] = judged_spikes
        return self.verdict(
            checked,
            found,
            work=injected + spikes,
            what="faults injected and load spikes (with probe samples after their end)",
            details={
                "recoveries": [r.to_json() for r in per_fault],
                **({"load_spikes": [r.to_json() for r in per_spike]} if per_spike else {}),
                "rto_s": rto_ns / 1e9,
                "signals": ["health"]
                + (["blocks"] if probes.has_height else [])
                + (["order"] if probes.has_order else []),
            },
        )

    def _judge(self, row: _Recovery, start: int, probes: _Probes, found: Findings) -> int:
        """Measure the recovery from `start` into `row` (a fault's or a spike's); a
        finding when it is past the rto or never came while the run went on for the rto.
        1 when judged, else 0."""
        rto_ns = self.p.rto.ns
        label = row.label
        base = {"fault": label, "name": row.name, "target": row.target}
        end_word = "its end" if row.spike_s is not None else "the heal"
        row.measured_from_ns = start
        res = row.measured = self._measure(probes, start)
        if res.status == "no samples":
            return 0
        if res.recovery_s is None:
            waited_ns = probes.t[-1] - start
            if waited_ns < rto_ns:
                row.status = "run ended before rto"
                return 0
            missing = res.missing()
            found.add(
                f"{label}: not recovered {waited_ns / 1e9:.1f}s after {end_word} "
                f"(still missing: {', '.join(missing)})",
                **base,
                measured_from_ns=start,
                expected=f"recovered within {rto_ns / 1e9:g}s",
                seen={"missing": missing, "waited_s": round(waited_ns / 1e9, 3)},
            )
            return 1
        if res.recovery_s * 1e9 > rto_ns:
            found.add(
                f"{label}: recovered after {res.recovery_s:.2f}s > rto {rto_ns / 1e9:g}s",
                **base,
                measured_from_ns=start,
                expected=rto_ns / 1e9,
                seen=res.recovery_s,
                health_s=res.health_s,
                blocks_s=res.blocks_s,
                order_s=res.order_s,
            )
        return 1

    @staticmethod
    def _measure(p: _Probes, start: int) -> _Measured:
        i0 = bisect_left(p.t, start)
        if i0 >= len(p.t):
            return _Measured("no samples")
        needed = (
            ["health"] + (["blocks"] if p.has_height else []) + (["order"] if p.has_order else [])
        )
        seen: dict[str, int] = {}
        first_height: int | None = None
        for i in range(i0, len(p.t)):
            if "health" not in seen and p.healthy[i]:
                seen["health"] = p.t[i]
            hi = p.height[i]
            if "blocks" not in seen and hi is not None:
                if first_height is None:
                    first_height = (
                        hi  # the first height after the heal; production means a higher one
                    )
                elif hi > first_height:
                    seen["blocks"] = p.t[i]
            if "order" not in seen and p.order_ok[i]:
                seen["order"] = p.t[i]
            if all(k in seen for k in needed):
                break

        def secs(key: str) -> float | None:
            return round((seen[key] - start) / 1e9, 3) if key in seen else None

        done = max(seen[k] for k in needed) if all(k in seen for k in needed) else None
        return _Measured(
            "recovered" if done is not None else "not recovered",
            None if done is None else round((done - start) / 1e9, 3),
            needed,
            secs("health"),
            secs("blocks"),
            secs("order"),
        )
