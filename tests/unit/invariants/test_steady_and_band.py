"""steady_state (history outside fault windows) and no_trades_outside_band."""

from __future__ import annotations

from collections.abc import Callable

from l2chaos.invariants.base import Verdict
from l2chaos.invariants.synth import RecordWriter
from l2chaos.rundir.json_types import JsonValue

from tests._support.json_path import arr, at, obj

Check = Callable[..., Verdict]
BTC = "BTC-USD-PERP"


def ops(
    rw: RecordWriter,
    start: float,
    end: float,
    *,
    every: float = 0.1,
    latency: float = 0.01,
    outcome: str = "ok",
    prefix: str = "a",
) -> int:
    n = 0
    t = start
    while t < end - 1e-9:
        rw.op(f"{prefix}{n}", "get_account", invoke_s=t, done_s=t + latency, outcome=outcome)
        n += 1
        t = round(t + every, 6)
    return n


# ------------------------------------------------------------------ steady_state


def test_steady_outside_the_fault_holds(rw: RecordWriter, check: Check) -> None:
    rw.fault(0, "network.timeout", target="ui-api->rpc", inject_s=30.0, heal_s=40.0)
    before = ops(rw, 0.0, 30.0)
    ops(rw, 30.0, 45.0, outcome="info", prefix="f", latency=2.0)  # errors in the window + settle
    after = ops(rw, 45.1, 90.0, prefix="b")  # the window ends at heal + settle = 45 s
    v = check("steady_state", settle=5_000_000_000)
    assert v.status == "pass", [x.message for x in v.violations]
    assert v.checked["ops"] == before + after
    assert at(v.details, "overall", "p99_ms") == 10.0
    assert [obj(s)["segment"] for s in arr(v.details["segments"])] == [
        "before the first fault",
        "after the last fault",
    ]


def test_degraded_after_the_fault_is_caught_per_segment(rw: RecordWriter, check: Check) -> None:
    rw.fault(0, "network.timeout", target="ui-api->rpc", inject_s=300.0, heal_s=310.0)
    ops(rw, 0.0, 300.0)  # a long healthy baseline
    ops(rw, 315.0, 330.0, prefix="b")
    ops(rw, 315.05, 330.0, outcome="info", prefix="c", every=0.5)  # 20% errors afterwards
    v = check("steady_state", settle=5_000_000_000)
    assert v.status == "fail"
    seg = [x for x in v.violations if x.evidence.get("segment") == "after the last fault"]
    assert seg
    assert "error rate" in seg[0].message
    assert seg[0].evidence["errors"] == 30
    assert not [x for x in v.violations if x.evidence.get("segment") == "all steady operations"]


def test_latency_bound(rw: RecordWriter, check: Check) -> None:
    ops(rw, 0.0, 10.0, latency=0.05)
    rw.op("slow", "get_account", invoke_s=11.0, done_s=13.5)
    rw.touch("faults.jsonl")
    assert check("steady_state", p99_ms=100.0).status == "pass"  # 1 slow op of 101: p99 is 50
    v = check("steady_state", p50_ms=20.0)
    assert v.status == "fail"
    ev = v.violations[0].evidence
    assert ev["seen"] == 50.0
    assert ev["expected"] == 20.0
    assert at(ev, "slowest", 0, "latency_ms") == 2500.0


def test_fail_outcomes_are_not_errors_unless_asked(rw: RecordWriter, check: Check) -> None:
    ops(rw, 0.0, 10.0)
    ops(rw, 0.05, 10.0, outcome="fail", prefix="r")  # half rejected (4xx)
    assert check("steady_state").status == "pass"
    assert check("steady_state", count_fail=True).status == "fail"


def test_ops_filter(rw: RecordWriter, check: Check) -> None:
    ops(rw, 0.0, 10.0)
    rw.op("x", "place_order", invoke_s=1.0, done_s=1.1, outcome="info")
    assert check("steady_state", ops=["place_order"]).status == "fail"
    assert check("steady_state", ops=["get_account"]).status == "pass"


def test_all_operations_inside_windows_is_vacuous(rw: RecordWriter, check: Check) -> None:
    rw.fault(0, "network.latency", target="ui-api->rpc", inject_s=0.0, heal_s=100.0)
    ops(rw, 1.0, 50.0)
    v = check("steady_state")
    assert v.status == "fail"
    assert "checked nothing" in v.reason


def test_ops_open_at_the_end_are_ignored(rw: RecordWriter, check: Check) -> None:
    ops(rw, 0.0, 10.0)
    for i in range(20):
        rw.op(f"open{i}", "get_account", invoke_s=9.9, done_s=None)
    assert check("steady_state").status == "pass"


def test_without_history_not_applicable(rw: RecordWriter, check: Check) -> None:
    v = check("steady_state")
    assert v.status == "not_applicable"


# -------------------------------------------------------- no_trades_outside_band


def band_setup(rw: RecordWriter) -> None:
    rw.header()
    for t in range(100):
        rw.oracle(float(t), BTC, 90_000)


def mode(rw: RecordWriter, t: float, m: str, market: str | None = None) -> None:
    rw.event(
        "mode_change", block=int(t), block_seq=int(t), host_s=t, data={"mode": m, "market": market}
    )


def fill(rw: RecordWriter, t: float, price: int, **extra: JsonValue) -> None:
    rw.event(
        "fill",
        block=int(t),
        block_seq=int(t),
        host_s=t,
        data={"market": BTC, "price": price, "size": 10, "taker": 5, **extra},
    )


def order_accepted(rw: RecordWriter, t: float, price: int, order_id: int) -> None:
    rw.event(
        "order_accepted",
        block=int(t),
        block_seq=int(t),
        host_s=t,
        data={"market": BTC, "price": price, "account": 3, "order_id": order_id},
    )


def test_fills_within_band_in_post_only_hold(rw: RecordWriter, check: Check) -> None:
    band_setup(rw)
    mode(rw, 10.0, "post_only")
    fill(rw, 12.0, 91_000)
    order_accepted(rw, 13.0, 88_000, order_id=1)
    mode(rw, 20.0, "normal")
    fill(rw, 50.0, 200_000)  # normal mode, long after the reopen: not guarded
    v = check("no_trades_outside_band")
    assert v.status == "pass", [x.message for x in v.violations]
    assert v.checked == {"fills": 1, "liquidations": 0, "orders": 1}
    assert v.details["guarded_periods"] == 1


def test_fill_outside_band_in_post_only_is_caught(rw: RecordWriter, check: Check) -> None:
    band_setup(rw)
    mode(rw, 10.0, "post_only")
    fill(rw, 12.0, 60_000)
    v = check("no_trades_outside_band")
    assert v.status == "fail"
    ev = v.violations[0].evidence
    assert ev["seen"] == 60_000
    assert ev["reference"] == 90_000
    assert ev["mode"] == "post_only"
    assert ev["expected"] == [85_500, 94_500]
    assert ev["account"] == 5


def test_order_accepted_outside_band_is_caught(rw: RecordWriter, check: Check) -> None:
    band_setup(rw)
    mode(rw, 10.0, "cancel_only")
    mode(rw, 11.0, "post_only")
    order_accepted(rw, 13.0, 30_000, order_id=77)
    v = check("no_trades_outside_band")
    assert v.status == "fail"
    assert v.violations[0].evidence["order_id"] == 77


def test_recovering_after_reopen_is_guarded(rw: RecordWriter, check: Check) -> None:
    band_setup(rw)
    mode(rw, 10.0, "post_only", market=BTC)
    mode(rw, 20.0, "normal", market=BTC)
    fill(rw, 25.0, 60_000)  # 5 s after reopening: still recovering
    v = check("no_trades_outside_band", after_reopen=10_000_000_000)
    assert v.status == "fail"
    assert check("no_trades_outside_band", after_reopen=1_000_000_000).no_work


def test_liquidation_in_post_only_outside_band(rw: RecordWriter, check: Check) -> None:
    band_setup(rw)
    mode(rw, 10.0, "post_only")
    rw.event(
        "liquidation",
        block=12,
        block_seq=12,
        host_s=12.0,
        data={"market": BTC, "price": 50_000, "account": 8},
    )
    v = check("no_trades_outside_band")
    assert v.status == "fail"
    assert v.violations[0].evidence["kind"] == "liquidation"


def test_fault_windows_can_be_guarded_too(rw: RecordWriter, check: Check) -> None:
    band_setup(rw)
    rw.fault(0, "oracle.spike", target="", inject_s=30.0, heal_s=40.0)
    fill(rw, 35.0, 150_000)
    assert check("no_trades_outside_band").no_work
    assert check("no_trades_outside_band", in_fault_windows=True).status == "fail"


def test_guarded_fill_without_reference_is_vacuous(rw: RecordWriter, check: Check) -> None:
    rw.header()
    rw.oracle(1.0, "ETH-USD-PERP", 3_000)
    mode(rw, 10.0, "post_only")
    fill(rw, 12.0, 90_000)
    v = check("no_trades_outside_band")
    assert v.status == "fail"
    assert "checked nothing" in v.reason


def test_band_without_oracle_log_not_applicable(rw: RecordWriter, check: Check) -> None:
    rw.header()
    mode(rw, 10.0, "post_only")
    assert check("no_trades_outside_band").status == "not_applicable"


def test_steady_fails_when_no_operation_succeeded(rw: RecordWriter, check: Check) -> None:
    # a target that answered every call with an error (e.g. -32601 method not found):
    # zero errors by the `info` count, but nothing was ever acknowledged
    n = ops(rw, 0.0, 20.0, outcome="fail")
    rw.touch("faults.jsonl")
    v = check("steady_state")
    assert v.status == "fail"
    assert v.reason == f"none of the {n} operations the run gave it succeeded"
    assert not v.no_work
