"""check_run end to end on hand-made records: coverage counts, sometimes rules,
expectations and exit codes (0 met, 1 not met, 3 the harness broke)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from l2chaos.errors import UsageError
from l2chaos.invariants.base import Verdict, Violation
from l2chaos.invariants.check import check_run
from l2chaos.invariants.expectations import evaluate
from l2chaos.invariants.synth import RecordWriter
from l2chaos.rundir.faults import FAULTS, FaultLine
from msgspec.structs import replace

from tests._support.json_path import arr, obj, text

BTC = "BTC-USD-PERP"
LIQ = [{"name": "no_zero_price_liquidations", "params": {}}]


def incident(rw: RecordWriter, *, zero: bool, blocked: bool = False) -> None:
    """A restart window 10-14 s with one liquidation attempt in it at 12 s."""
    rw.header()
    rw.fault(0, "process.restart_race", inject_s=10.0, heal_s=14.0, label="db-restart")
    for i in range(30):
        rw.block(i, host_s=float(i))
    kind = "liquidation_blocked" if blocked else "liquidation"
    rw.event(
        kind,
        block=12,
        block_seq=12,
        host_s=12.0,
        data={
            "account": 42,
            "market": BTC,
            "price": 0 if zero else 90_000,
            "oracle_price": 0 if zero else 90_000,
            "mark_price": 0 if zero else 90_000,
            "guard": "readiness_gate" if blocked else None,
        },
    )
    rw.event("fill", block=20, block_seq=20, host_s=20.0, data={"market": BTC, "price": 90_000})
    for i in range(40):
        t = i * 0.5
        rw.op(
            f"o{i}",
            "place_order",
            invoke_s=t,
            done_s=t + 0.01,
            outcome="info" if 10 <= t <= 14 else "ok",
            result={"tx_hash": f"0x{i}"},
        )


def scenario(
    rw: RecordWriter,
    *,
    profile: str,
    expect: dict[str, Any] | None = None,
    sometimes: list[dict[str, Any]] | None = None,
    invariants: list[dict[str, Any]] = LIQ,
) -> None:
    rw.scenario(profile=profile, invariants=invariants, expect=expect, sometimes=sometimes)


EXPECT = {
    "vulnerable": {"violated": ["no_zero_price_liquidations"]},
    "hardened": {"all_hold": True},
}
ATTEMPT = {
    "during": "db-restart",
    "fault_index": 0,
    "count": "liquidation_attempts",
    "at_least": 1,
    "at_most": None,
    "extend_ns": 0,
    "profiles": None,
}


def test_vulnerable_replay_meets_its_expectation(rw: RecordWriter, run_dir: Path) -> None:
    incident(rw, zero=True)
    scenario(rw, profile="vulnerable", expect=EXPECT, sometimes=[ATTEMPT])
    rw.close()
    out = check_run(run_dir)
    assert out.exit_code == 0
    assert out.verdict == "pass"
    assert out.expectation.roles == {
        "no_zero_price_liquidations": "must_be_violated",
        "sometimes": "must_hold",
    }
    assert out.verdicts[0].status == "fail"
    assert out.sometimes is not None
    assert out.sometimes.status == "pass"


def test_vulnerable_replay_that_catches_nothing_is_not_met(rw: RecordWriter, run_dir: Path) -> None:
    incident(rw, zero=False)
    scenario(rw, profile="vulnerable", expect=EXPECT)
    rw.close()
    out = check_run(run_dir)
    assert out.exit_code == 1
    assert out.expectation.problems == [
        "no_zero_price_liquidations was expected to be violated, but it held"
    ]


def test_hardened_all_hold_with_blocked_attempts(rw: RecordWriter, run_dir: Path) -> None:
    incident(rw, zero=True, blocked=True)
    hardened_rule = {
        **ATTEMPT,
        "count": "liquidations_blocked.readiness_gate",
        "profiles": ["hardened"],
    }
    scenario(rw, profile="hardened", expect=EXPECT, sometimes=[ATTEMPT, hardened_rule])
    rw.close()
    out = check_run(run_dir)
    assert out.exit_code == 0, out.expectation.problems
    w = out.windows[0]
    assert w.label == "db-restart"
    assert w.counts["liquidations_blocked"] == 1
    assert w.counts["liquidations_blocked.readiness_gate"] == 1
    assert w.counts["liquidation_attempts"] == 1
    assert w.counts["fills"] == 0
    assert w.counts["blocks"] == 5  # blocks at 10, 11, 12, 13, 14 s
    assert w.counts["ops_info"] == 9  # invoked at 10.0, 10.5, ..., 14.0
    assert out.run_counts["fills"] == 1


def test_sometimes_rule_that_does_not_hold_fails_the_run(rw: RecordWriter, run_dir: Path) -> None:
    incident(rw, zero=False)
    fills = {**ATTEMPT, "count": "fills"}
    scenario(rw, profile="hardened", expect=EXPECT, sometimes=[fills])
    rw.close()
    out = check_run(run_dir)
    assert out.exit_code == 1
    assert out.sometimes is not None
    ev = out.sometimes.violations[0].evidence
    assert ev["seen"] == 0
    assert ev["window"] == "db-restart"
    extended = {**fills, "extend_ns": 10_000_000_000}  # the fill at 20 s is within heal + 10 s
    scenario(rw, profile="hardened", expect=EXPECT, sometimes=[extended])
    assert check_run(run_dir).exit_code == 0


def test_rule_for_another_profile_does_not_apply(rw: RecordWriter, run_dir: Path) -> None:
    incident(rw, zero=False)
    scenario(
        rw,
        profile="hardened",
        sometimes=[{**ATTEMPT, "count": "fills", "profiles": ["vulnerable"]}],
    )
    rw.close()
    out = check_run(run_dir)
    assert out.exit_code == 0
    assert out.sometimes is not None
    assert out.sometimes.no_work


def test_rule_for_a_fault_never_injected(rw: RecordWriter, run_dir: Path) -> None:
    incident(rw, zero=False)
    scenario(rw, profile="hardened", sometimes=[{**ATTEMPT, "during": "later", "fault_index": 3}])
    rw.close()
    out = check_run(run_dir)
    assert out.exit_code == 1
    assert out.sometimes is not None
    assert "was never injected" in out.sometimes.violations[0].message


def test_no_expect_means_every_invariant_must_hold(rw: RecordWriter, run_dir: Path) -> None:
    incident(rw, zero=True)
    scenario(rw, profile="vulnerable")
    rw.close()
    out = check_run(run_dir)
    assert out.exit_code == 1
    assert "no expect for profile vulnerable" in out.expectation.text


def test_not_applicable_never_satisfies_all_hold(rw: RecordWriter, run_dir: Path) -> None:
    rw.header()  # no events.jsonl
    scenario(rw, profile="hardened", expect=EXPECT)
    rw.close()
    out = check_run(run_dir)
    assert out.verdicts[0].status == "not_applicable"
    assert out.exit_code == 1
    assert "never counts as holding" in out.expectation.problems[0]


def test_malformed_record_is_a_harness_error(rw: RecordWriter, run_dir: Path) -> None:
    incident(rw, zero=False)
    both = [*LIQ, {"name": "fund_conservation", "params": {}}]
    scenario(rw, profile="hardened", expect=EXPECT, invariants=both)
    rw.close()
    with (run_dir / "audit/events.jsonl").open("a") as fh:
        fh.write("{not json\n")
    out = check_run(run_dir)
    assert out.exit_code == 3
    # checkers that pre-filter lines by kind skip it; one that reads every event sees it
    assert [v.status for v in out.verdicts] == ["pass", "error"]
    assert "audit/events.jsonl:3: invalid JSON line" in out.verdicts[1].reason
    assert out.expectation.harness_error is not None


def test_problems_during_the_run_are_a_harness_error(rw: RecordWriter, run_dir: Path) -> None:
    incident(rw, zero=True)
    scenario(rw, profile="vulnerable", expect=EXPECT)
    rw.run(end_s=60, problems=["fault db-restart: heal: connection refused"])
    rw.close()
    out = check_run(run_dir)
    assert out.exit_code == 3
    assert out.expectation.harness_error == "fault db-restart: heal: connection refused"


def test_faults_summary(rw: RecordWriter, run_dir: Path) -> None:
    rw.fault(
        0, "process.restart_race", inject_s=10.2, scheduled_s=10.0, heal_s=14.0, label="db-restart"
    )
    for i in range(200):
        rw.probe(i * 0.25, healthy=not 10 <= i * 0.25 < 15, height=i)
    scenario(rw, profile="hardened", invariants=[{"name": "recoverability", "params": {}}])
    rw.close()
    out = check_run(run_dir)
    f = out.faults[0]
    assert f.record.name == "process.restart_race"
    assert f.record.target == "db"
    assert f.scheduled_at == 10.0
    assert f.injected_at == 10.2
    assert f.healed_at == 14.0
    assert f.record.lateness_ms == 200.0
    assert f.recovery_s == 1.0


def test_fault_summary_json_is_pinned(rw: RecordWriter, run_dir: Path) -> None:
    """result.json's `faults[]` (docs/result-schema.md), key by key and in order, for a
    fault injected and healed, one fired by a block trigger whose heal failed, and one
    that never fired."""
    rw.fault(0, "process.restart_race", inject_s=10.2, scheduled_s=10.0, heal_s=14.0, label="db")
    spike = FaultLine(fault_id=1, label="spike", name="network.latency", target="rpc")
    inject = replace(
        spike,
        action="inject",
        scheduled_ns=20_000_000_000,
        t_ns=rw.t(21.5),
        lateness_ms=1500.0,
        took_ms=2.0,
        block=42,
        trigger={"kind": "block", "at": 40},
        trigger_text="block +40",
        target_block=40,
        lateness_blocks=2,
    )
    rw.append_record(FAULTS, inject)
    rw.append_record(
        FAULTS, replace(spike, action="heal", t_ns=rw.t(30.0), ok=False, error="refused")
    )
    rw.append_record(
        FAULTS,
        FaultLine(
            fault_id=2,
            label="late",
            name="process.pause",
            target="sequencer",
            action="missed",
            trigger={"kind": "event", "event": "rollback"},
            trigger_text="event rollback",
            error="the event never happened",
        ),
    )
    for i in range(200):
        rw.probe(i * 0.25, healthy=not 10 <= i * 0.25 < 15, height=i)
    scenario(rw, profile="hardened", invariants=[{"name": "recoverability", "params": {}}])
    rw.close()
    common = {"inject_ok": True, "heal_ok": True, "errors": []}
    expected: list[dict[str, object]] = [
        {
            "fault_id": 0,
            "label": "db",
            "name": "process.restart_race",
            "target": "db",
            "scheduled_at": 10.0,
            "injected_at": 10.2,
            "healed_at": 14.0,
            "injected_t_ns": rw.t(10.2),
            "healed_t_ns": rw.t(14.0),
            "lateness_ms": 200.0,
            "trigger": None,
            "block": None,
            "target_block": None,
            "lateness_blocks": None,
            "missed": None,
            **common,
            "recovery_s": 1.0,
            "recovery_status": "recovered",
        },
        {
            "fault_id": 1,
            "label": "spike",
            "name": "network.latency",
            "target": "rpc",
            "scheduled_at": 20.0,
            "injected_at": 21.5,
            "healed_at": 30.0,
            "injected_t_ns": rw.t(21.5),
            "healed_t_ns": rw.t(30.0),
            "lateness_ms": 1500.0,
            "trigger": {"kind": "block", "at": 40, "text": "block +40"},
            "block": 42,
            "target_block": 40,
            "lateness_blocks": 2,
            "missed": None,
            "inject_ok": True,
            "heal_ok": False,
            "errors": ["heal: refused"],
            "recovery_s": None,
            "recovery_status": "heal failed",
        },
        {
            "fault_id": 2,
            "label": "late",
            "name": "process.pause",
            "target": "sequencer",
            "scheduled_at": None,
            "injected_at": None,
            "healed_at": None,
            "injected_t_ns": None,
            "healed_t_ns": None,
            "lateness_ms": None,
            "trigger": {"kind": "event", "event": "rollback", "text": "event rollback"},
            "block": None,
            "target_block": None,
            "lateness_blocks": None,
            "missed": "the event never happened",
            "inject_ok": None,
            "heal_ok": None,
            "errors": ["missed: the event never happened"],
            "recovery_s": None,
            "recovery_status": None,
        },
    ]
    got = [f.to_json() for f in check_run(run_dir).faults]
    assert [list(j.items()) for j in got] == [list(e.items()) for e in expected]


def test_params_are_filled_with_defaults(rw: RecordWriter, run_dir: Path) -> None:
    scenario(
        rw,
        profile="hardened",
        invariants=[{"name": "liquidations_justified", "params": {"band": 0.1}}],
    )
    rw.close()
    out = check_run(run_dir)
    assert out.verdicts[0].params == {"band": 0.1, "tolerance": 0.01}


def test_not_a_run_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"scenario\.resolved\.json is missing"):
        check_run(tmp_path)
    with pytest.raises(UsageError, match="not a directory"):
        check_run(tmp_path / "nope")


def test_unknown_invariant_in_a_recorded_scenario(rw: RecordWriter, run_dir: Path) -> None:
    scenario(rw, profile="hardened", invariants=[{"name": "from_a_plugin", "params": {}}])
    rw.close()
    with pytest.raises(UsageError, match="unknown invariant 'from_a_plugin'"):
        check_run(run_dir)


def test_caught_requires_evidence() -> None:
    vacuous = Verdict("fund_conservation", "fail", reason="checked nothing although ...")
    caught = Verdict("no_zero_price_liquidations", "fail", violations=[Violation("x")])
    res = evaluate(None, "vulnerable", [vacuous, caught], None)
    assert not res.met
    from l2chaos.invariants.expectations import Expectation

    res = evaluate(
        Expectation(violated=("fund_conservation",)), "vulnerable", [vacuous, caught], None
    )
    assert not res.met
    assert "failed without a violation" in res.problems[0]
    res = evaluate(
        Expectation(violated=("no_zero_price_liquidations",)), "vulnerable", [vacuous, caught], None
    )
    assert res.met
    assert res.exit_code == 0
    assert res.roles["fund_conservation"] == "reported"


def l7_run(rw: RecordWriter, *, hits: int, sometimes: list[dict[str, Any]] | None = None) -> None:
    """A message fault (rule r1, 10-14 s) whose decisions hit `hits` calls in its window;
    a miss of the draw, a hit with nothing to act on and a later rule's hit do not count."""
    incident(rw, zero=False)
    details = {"link": "oracle->pricefeed", "rule": "r1"}
    rw.fault(
        1,
        "rpc.corrupt",
        inject_s=10.0,
        heal_s=14.0,
        label="zero",
        target="oracle->pricefeed",
        details=details,
    )
    rw.touch("l7.jsonl")
    for i in range(hits):
        rw.l7(10.5 + i * 0.5, "r1")
    rw.l7(11.2, "r1", hit=False)
    rw.l7(11.3, "r1", effect="no_effect")
    rw.l7(20.0, "r2")
    scenario(rw, profile="hardened", sometimes=sometimes)
    rw.close()


def test_l7_hits_are_counted_per_window_and_per_rule(rw: RecordWriter, run_dir: Path) -> None:
    rule = {**ATTEMPT, "during": "zero", "fault_index": 1, "count": "l7_hits", "at_least": 3}
    l7_run(rw, hits=3, sometimes=[rule])
    out = check_run(run_dir)
    assert out.exit_code == 0, out.expectation.problems
    (w,) = [w for w in out.windows if w.label == "zero"]
    assert w.counts["l7_hits"] == 3
    assert w.counts["l7_hits.r1"] == 3
    assert out.run_counts["l7_hits"] == 4
    assert out.sometimes is not None
    texts = [text(obj(r)["rule"]) for r in arr(out.sometimes.details["rules"])]
    assert any(t.startswith("l7_hits.r1 at least 1 during zero (implicit") for t in texts)


def test_a_message_fault_that_hit_nothing_fails_the_run(rw: RecordWriter, run_dir: Path) -> None:
    l7_run(rw, hits=0)  # no sometimes rule of its own: the implicit one still applies
    out = check_run(run_dir)
    assert out.exit_code == 1
    assert out.sometimes is not None
    (v,) = out.sometimes.violations
    assert v.evidence["seen"] == 0
    assert "rpc.corrupt on oracle->pricefeed must act on a call" in v.message
