"""recoverability: recovery time per fault from probes.jsonl and faults.jsonl."""

from __future__ import annotations

from collections.abc import Callable

from l2chaos.invariants.base import Verdict
from l2chaos.invariants.synth import RecordWriter
from l2chaos.rundir.json_types import JsonObject

from tests._support.json_path import arr, at, num, obj
from tests._support.verdicts import not_applicable

Check = Callable[..., Verdict]


def probes(
    rw: RecordWriter, *, until: float, down: tuple[float, float], step: float = 0.25
) -> None:
    """Healthy except in [down); blocks stall while down; order round-trips fail."""
    height = 0
    t = 0.0
    while t <= until + 1e-9:
        bad = down[0] <= t < down[1]
        if not bad:
            height += 1
        rw.probe(t, healthy=not bad, height=height, order_ok=not bad)
        t = round(t + step, 6)


def test_quick_recovery_holds_and_is_reported(rw: RecordWriter, check: Check) -> None:
    rw.fault(0, "process.restart_race", inject_s=10.0, heal_s=14.0, label="db-restart")
    probes(rw, until=60.0, down=(10.0, 15.5))
    v = check("recoverability", rto=30_000_000_000)
    assert v.status == "pass", v.violations
    assert v.checked == {"faults": 1}
    row = obj(at(v.details, "recoveries", 0))
    assert row["label"] == "db-restart"
    assert row["recovery_s"] == 1.5
    assert row["health_s"] == 1.5
    assert row["order_s"] == 1.5
    assert row["blocks_s"] == 1.5


def test_slow_recovery_is_a_violation(rw: RecordWriter, check: Check) -> None:
    rw.fault(0, "process.restart_race", inject_s=10.0, heal_s=14.0, label="db-restart")
    probes(rw, until=120.0, down=(10.0, 54.0))
    v = check("recoverability", rto=30_000_000_000)
    assert v.status == "fail"
    ev = v.violations[0].evidence
    assert ev["fault"] == "db-restart"
    assert ev["seen"] == 40.0
    assert ev["expected"] == 30.0
    assert at(v.details, "recoveries", 0, "recovery_s") == 40.0


def test_never_recovered_is_a_violation(rw: RecordWriter, check: Check) -> None:
    rw.fault(0, "network.down", target="sequencer->db", inject_s=10.0, heal_s=20.0)
    probes(rw, until=90.0, down=(10.0, 1000.0))
    v = check("recoverability", rto=30_000_000_000)
    assert v.status == "fail"
    assert "not recovered" in v.violations[0].message
    assert set(arr(at(v.violations[0].evidence, "seen", "missing"))) == {
        "health",
        "blocks",
        "order",
    }


def test_blocks_must_advance_after_the_heal(rw: RecordWriter, check: Check) -> None:
    rw.fault(0, "process.pause", target="sequencer", inject_s=10.0, heal_s=12.0)
    for i in range(400):
        t = i * 0.25
        rw.probe(t, healthy=True, height=min(i, 40), order_ok=True)  # height stuck at 40 forever
    v = check("recoverability", rto=30_000_000_000)
    assert v.status == "fail"
    assert at(v.violations[0].evidence, "seen", "missing") == ["blocks"]


def test_failed_heal_is_a_violation(rw: RecordWriter, check: Check) -> None:
    rw.fault(
        0, "oracle.zero", target="", inject_s=10.0, heal_s=20.0, heal_ok=False, error="hook 500"
    )
    probes(rw, until=60.0, down=(10.0, 11.0))
    v = check("recoverability")
    assert v.status == "fail"
    assert "heal failed" in v.violations[0].message
    assert "hook 500" in v.violations[0].message


def test_overlapping_faults_measure_from_the_last_heal(rw: RecordWriter, check: Check) -> None:
    rw.fault(0, "network.latency", target="ui-api->rpc", inject_s=10.0, heal_s=20.0)
    rw.fault(1, "process.kill", target="rpc", inject_s=15.0, heal_s=30.0)
    probes(rw, until=60.0, down=(15.0, 31.0))
    v = check("recoverability")
    rows = {obj(r)["fault_id"]: obj(r) for r in arr(v.details["recoveries"])}
    assert rows[0]["measured_from_ns"] == rw.t(30.0)
    assert rows[0]["recovery_s"] == 1.0
    assert rows[1]["recovery_s"] == 1.0


def test_run_that_ended_before_the_rto_is_not_judged(rw: RecordWriter, check: Check) -> None:
    rw.fault(0, "process.kill", target="rpc", inject_s=10.0, heal_s=20.0)
    probes(rw, until=25.0, down=(10.0, 100.0))
    v = check("recoverability", rto=30_000_000_000)
    assert v.status == "fail"  # the only fault could not be judged: vacuous
    assert "checked nothing although the run had 1 faults injected" in v.reason
    assert at(v.details, "recoveries", 0, "status") == "run ended before rto"


def test_no_probe_after_the_heal_is_vacuous(rw: RecordWriter, check: Check) -> None:
    rw.fault(0, "process.kill", target="rpc", inject_s=10.0, heal_s=20.0)
    probes(rw, until=15.0, down=(10.0, 100.0))
    v = check("recoverability")
    assert v.status == "fail"
    assert "checked nothing" in v.reason


def test_no_faults_is_no_work(rw: RecordWriter, check: Check) -> None:
    rw.touch("faults.jsonl")
    probes(rw, until=5.0, down=(0.0, 0.0))
    v = check("recoverability")
    assert v.status == "pass"
    assert v.no_work


def test_without_probes_not_applicable(rw: RecordWriter, check: Check) -> None:
    rw.fault(0, "process.kill", target="rpc", inject_s=10.0, heal_s=20.0)
    not_applicable(check("recoverability"), "probes.jsonl")


def test_after_a_rollback_production_not_the_old_height_must_return(
    rw: RecordWriter, check: Check
) -> None:
    rw.fault(0, "chain.rollback", inject_s=20.0, heal_s=20.0, label="rollback")
    for i in range(240):  # 4 blocks/s, rolled back 60 blocks at 20 s, then producing again
        t = i * 0.25
        height = i if t < 20.0 else 20 + (i - 80)
        rw.probe(t, healthy=True, height=height, order_ok=True)
    v = check("recoverability", rto=5_000_000_000)
    assert v.status == "pass", v.violations
    assert num(at(v.details, "recoveries", 0, "blocks_s")) <= 0.5  # not the 15 s to pass height 80


def test_signals_the_stack_does_not_probe_are_not_required(rw: RecordWriter, check: Check) -> None:
    rw.fault(0, "process.restart", target="api", inject_s=10.0, heal_s=11.0)
    for i in range(160):
        t = i * 0.25
        rw.probe(t, healthy=not 10.0 <= t < 12.0, height=None, order_ok=None)
    v = check("recoverability", rto=5_000_000_000)
    assert v.status == "pass", v.violations
    assert v.details["signals"] == ["health"]
    assert at(v.details, "recoveries", 0, "recovery_s") == 1.0


def _spike(rw: RecordWriter, at_s: float, for_s: float) -> None:
    """The scenario's open-loop rate: 10 steps/s, 100 from at_s for for_s."""
    end = at_s + for_s
    points = [[0.0, 10.0], [at_s, 10.0], [at_s, 100.0], [end, 100.0], [end, 10.0]]
    rw.scenario(load={"rate": {"shape": "spike", "points": points, "max_lag_ns": 10**9}})
    rw.touch("faults.jsonl")  # a run without faults


def test_a_load_spike_is_measured_from_its_end(rw: RecordWriter, check: Check) -> None:
    _spike(rw, 10.0, 20.0)
    probes(rw, until=60.0, down=(12.0, 31.0))  # back 1 s after the spike ends at 30 s
    v = check("recoverability", rto=5_000_000_000)
    assert v.status == "pass", v.violations
    assert v.checked == {"faults": 0, "load_spikes": 1}
    assert v.details["recoveries"] == []  # the faults' (joined with faults.jsonl)
    [row] = map(obj, arr(v.details["load_spikes"]))
    assert row["label"] == "load-spike"
    assert row["spike_s"] == 20.0
    assert row["recovery_s"] == 1.0


def test_a_stack_still_down_after_a_load_spike_is_a_violation(
    rw: RecordWriter, check: Check
) -> None:
    _spike(rw, 10.0, 20.0)
    probes(rw, until=90.0, down=(12.0, 50.0))
    v = check("recoverability", rto=5_000_000_000)
    assert v.status == "fail"
    [found] = v.violations
    assert found.message == "load-spike: recovered after 20.00s > rto 5s"
    assert found.evidence["fault"] == "load-spike"
    assert found.evidence["seen"] == 20.0
    assert found.evidence["order_s"] == 20.0


def test_a_rate_without_a_spike_adds_no_work(rw: RecordWriter, check: Check) -> None:
    rate: JsonObject = {"shape": "constant", "points": [[0.0, 10.0]], "max_lag_ns": 10**9}
    rw.scenario(load={"rate": rate})
    rw.touch("faults.jsonl")
    probes(rw, until=30.0, down=(40.0, 41.0))
    v = check("recoverability")
    assert v.status == "pass"
    assert v.checked == {"faults": 0}
    assert "load_spikes" not in v.details
