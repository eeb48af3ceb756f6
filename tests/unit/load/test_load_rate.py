"""Open-loop rate: the shapes as one curve, one clear error per mistake, the master's
split among workers, the per-second counts and their merge."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from l2chaos.errors import ScenarioError
from l2chaos.load import LoadPlan, parse_load
from l2chaos.load.rate import RateCounter, RatePlan, RateSummary, merge_rates, split_shares
from l2chaos.params import Where
from l2chaos.yamlsrc import load_yaml_text


def plan_of(text: str, file: Path | None = None) -> LoadPlan:
    name = str(file) if file else "scn.yaml"
    doc = load_yaml_text(textwrap.dedent(text), name)
    assert isinstance(doc, dict)
    return parse_load(doc["load"], Where(name, "load"), 1)


def rate_of(text: str, file: Path | None = None) -> RatePlan:
    rate = plan_of(text, file).rate
    assert rate is not None
    return rate


def error(text: str, file: Path | None = None) -> str:
    with pytest.raises(ScenarioError) as exc:
        plan_of(text, file)
    return str(exc.value)


def test_no_rate_is_closed_loop() -> None:
    assert plan_of("load:\n  users: 4\n").rate is None


def test_constant() -> None:
    r = rate_of("load:\n  rate: {shape: constant, ops: 100}\n")
    assert [r.target(t) for t in (0, 5.5, 1e6)] == [100, 100, 100]
    assert r.max_lag_ns == 1_000_000_000


def test_ramp_is_linear_between_at_and_at_plus_over() -> None:
    r = rate_of("load:\n  rate: {shape: ramp, from: 10, to: 110, over: 10s, at: 5s}\n")
    assert r.target(0) == 10
    assert r.target(5) == 10
    assert r.target(10) == pytest.approx(60)
    assert r.target(15) == 110
    assert r.target(100) == 110


def test_spike_steps_up_by_factor_and_back() -> None:
    r = rate_of("load:\n  rate: {shape: spike, ops: 50, factor: 10, at: 30s, for: 60s}\n")
    assert r.target(29.999) == 50
    assert r.target(30) == 500
    assert r.target(89.9) == 500
    assert r.target(90) == 50
    assert r.target(1000) == 50
    assert r.spikes() == [(30.0, 90.0)]  # what recoverability measures from its end
    assert r.scaled(0.5).spikes() == [(15.0, 45.0)]


def test_only_a_raising_spike_is_a_spike() -> None:
    assert rate_of("load:\n  rate: {shape: constant, ops: 5}\n").spikes() == []
    dip = rate_of("load:\n  rate: {shape: spike, ops: 50, factor: 0.5, at: 1s, for: 2s}\n")
    assert dip.spikes() == []


def test_csv_rates_hold_until_the_next_row(tmp_path: Path) -> None:
    (tmp_path / "rates.csv").write_text("seconds,ops\n5,100\n# the spike\n10, 1000\n20,0\n")
    r = rate_of("load:\n  rate: {shape: csv, file: rates.csv}\n", tmp_path / "scn.yaml")
    assert [r.target(t) for t in (0, 4.9, 5, 9.99, 10, 19.5, 20, 60)] == [
        0, 0, 100, 100, 1000, 1000, 0, 0,
    ]  # fmt: skip


def test_plan_round_trips_through_json() -> None:
    plan = plan_of("load:\n  rate: {shape: spike, ops: 5, at: 2s, for: 1s, max_lag: 250ms}\n")
    again = LoadPlan.from_json(json.loads(json.dumps(plan.to_json())))
    assert again == plan
    assert again.rate is not None
    assert again.rate.max_lag_ns == 250_000_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rate: 100", "scn.yaml:3: load.rate: expected a mapping"),
        (
            "rate: {ops: 100}",
            "load.rate.shape: expected one of constant, ramp, spike, csv, got None",
        ),
        (
            "rate: {shape: square}",
            "load.rate.shape: expected one of constant, ramp, spike, csv, got 'square'",
        ),
        ("rate: {shape: constant}", "load.rate: missing required parameter 'ops'"),
        ("rate: {shape: constant, ops: -1}", "load.rate.ops"),
        ("rate: {shape: spike, ops: 5}", "missing required parameter 'at'"),
        ("rate: {shape: ramp, from: 1, to: 2, over: soon}", "load.rate.over"),
        (
            "rate: {shape: constant, ops: 5, factor: 2}",
            "load.rate.factor: unknown parameter 'factor'",
        ),
    ],
)
def test_errors_name_file_line_and_field(text: str, expected: str) -> None:
    msg = error(f"load:\n  users: 2\n  {text}\n")
    assert msg.startswith("scn.yaml:3: ")
    assert expected in msg


def test_csv_errors_name_the_csv_line(tmp_path: Path) -> None:
    scn = tmp_path / "scn.yaml"
    text = "load:\n  rate: {shape: csv, file: r.csv}\n"
    assert "cannot read the rate file" in error(text, scn)
    (tmp_path / "r.csv").write_text("0,10\n5,ten\n")
    assert f"{tmp_path / 'r.csv'}:2: load.rate.file: expected `seconds,ops`" in error(text, scn)
    (tmp_path / "r.csv").write_text("0,10\n5,20\n5,30\n")
    assert "r.csv:3: load.rate.file: seconds must increase" in error(text, scn)
    (tmp_path / "r.csv").write_text("0,-3\n")
    assert "r.csv:1: load.rate.file: expected seconds >= 0 and 0 <= ops" in error(text, scn)
    (tmp_path / "r.csv").write_text("seconds,ops\n")
    assert "has no `seconds,ops` rows" in error(text, scn)


def test_shares_follow_the_users_each_worker_runs() -> None:
    assert split_shares({}) == {}
    assert split_shares({"a": 0, "b": 0}) == {"a": 0.5, "b": 0.5}
    assert split_shares({"a": 8, "b": 0}) == {"a": 0.5, "b": 0.5}  # b still spawning
    assert split_shares({"a": 30, "b": 10}) == {"a": 0.75, "b": 0.25}
    # a worker that left is simply not among them: the others take its share
    assert split_shares({"b": 10}) == {"b": 1.0}


def test_counter_hands_over_finished_seconds_only() -> None:
    c = RateCounter()
    c.add_target(0.2, 4.5)
    c.offered(0.2, 4)
    c.achieved(0.9)
    c.dropped(1.1)
    assert c.take_before(1.05)[0].to_json() == {
        "t_s": 0, "target": 4.5, "offered": 4, "achieved": 1, "dropped": 0,
    }  # fmt: skip
    assert c.take_before(1.5) == []
    assert [s.t_s for s in c.take_before(float("inf"))] == [1]


def test_merge_sums_workers_per_second(tmp_path: Path) -> None:
    a, b = tmp_path / "rate-0.jsonl", tmp_path / "rate-1.jsonl"
    a.write_text(
        '{"t_s": 0, "target": 50.0, "offered": 50, "achieved": 49, "dropped": 1}\n'
        '{"t_s": 1, "target": 50.0, "offered": 50, "achieved": 50, "dropped": 0}\n'
    )
    b.write_text(
        '{"t_s": 1, "target": 50.0, "offered": 50, "achieved": 48, "dropped": 0}\n{"t_s": 2, "ta'
    )  # a worker killed mid-line
    out = tmp_path / "rate.jsonl"
    seconds = merge_rates([a, b], out)
    assert [json.loads(x) for x in out.read_text().splitlines()] == [s.to_json() for s in seconds]
    assert [(s.t_s, s.target, s.offered, s.achieved) for s in seconds] == [
        (0, 50.0, 50, 49), (1, 100.0, 100, 98),
    ]  # fmt: skip
    assert RateSummary.of(seconds).to_json() == {
        "seconds": 2, "target": 150.0, "offered": 150, "achieved": 147, "dropped": 1,
    }  # fmt: skip
