"""Validation of the scenario sections invariants:, sometimes: and expect:."""

from __future__ import annotations

import pytest
from l2chaos.errors import ScenarioError
from l2chaos.invariants.coverage import SometimesRule, parse_sometimes
from l2chaos.invariants.expectations import Expectation, parse_expect
from l2chaos.invariants.liquidations_justified import JustifiedParams
from l2chaos.invariants.recoverability import RecoverabilityParams
from l2chaos.invariants.steady_state import SteadyParams
from l2chaos.invariants.uses import parse_invariants
from l2chaos.params import Duration, Where
from l2chaos.registry import checkers
from l2chaos.yamlsrc import load_yaml_text

W = Where("s.yaml", "")


def section(text: str, key: str) -> object:
    doc = load_yaml_text(text, "s.yaml")
    return doc[key]


def test_invariants_names_and_parameters() -> None:
    sec = section(
        "invariants:\n  - no_zero_price_liquidations\n  - recoverability: {rto: 45s}\n"
        "  - liquidations_justified:\n  - steady_state: {p99_ms: 250}\n",
        "invariants",
    )
    uses = parse_invariants(sec, W.child("invariants"))
    assert [u.name for u in uses] == [
        "no_zero_price_liquidations",
        "recoverability",
        "liquidations_justified",
        "steady_state",
    ]
    assert uses[1].params == RecoverabilityParams(rto=Duration.of(s=45))
    assert uses[2].params == JustifiedParams(band=0.05, tolerance=0.01)
    assert isinstance(uses[3].params, SteadyParams)
    assert uses[3].params.p99_ms == 250.0
    assert uses[1].to_json() == {"name": "recoverability", "params": {"rto": 45_000_000_000}}


def test_invariants_default_to_every_checker() -> None:
    uses = parse_invariants(None, W.child("invariants"))
    assert [u.name for u in uses] == list(checkers())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "invariants:\n  - no_such_thing\n",
            "s.yaml:2: invariants[0]: unknown invariant 'no_such_thing'; known: acknowledged_writes_durable, ",
        ),
        (
            "invariants:\n  - recoverability: {rto: fast}\n",
            "s.yaml:2: invariants[0].recoverability.rto: expected a duration",
        ),
        ("invariants:\n  - recoverability: {rtx: 1s}\n", "unknown parameter 'rtx'; allowed: rto"),
        (
            "invariants:\n  - fund_conservation\n  - fund_conservation\n",
            "s.yaml:3: invariants[1]: invariant 'fund_conservation' is listed twice",
        ),
        ("invariants: fund_conservation\n", "expected a list of invariant names"),
        ("invariants: []\n", "expected at least one invariant"),
        ("invariants:\n  - {a: 1, b: 2}\n", "one-key mapping"),
        (
            "invariants:\n  - liquidations_justified: {band: 2}\n",
            "expected a number between 0 and 1",
        ),
        ("invariants:\n  - recoverability: 30s\n", "expected a mapping of parameters"),
    ],
)
def test_invariants_bad_input(text: str, expected: str) -> None:
    with pytest.raises(ScenarioError) as err:
        parse_invariants(section(text, "invariants"), W.child("invariants"))
    assert expected in str(err.value)
    assert err.value.exit_code == 2


LABELS = ["db-restart", "oracle-zero"]


def test_sometimes_rules() -> None:
    sec = section(
        "sometimes:\n"
        "  - {during: db-restart, count: liquidation_attempts}\n"
        "  - {during: 1, count: liquidations_blocked.readiness_gate, at_least: 2, at_most: 9, extend: 5s, profiles: [hardened]}\n"
        "  - {during: run, count: fills, at_least: 100}\n"
        "  - {during: all_faults, count: ops_info, at_least: 0}\n",
        "sometimes",
    )
    rules = parse_sometimes(sec, W.child("sometimes"), LABELS, ["vulnerable", "hardened"])
    assert rules[0] == SometimesRule("db-restart", 0, "liquidation_attempts")
    assert rules[1] == SometimesRule(
        "oracle-zero", 1, "liquidations_blocked.readiness_gate", 2, 9, 5_000_000_000, ("hardened",)
    )
    assert rules[2].during == "run"
    assert rules[2].fault_index is None
    for r in rules:  # what the runner writes into scenario.resolved.json comes back the same
        assert SometimesRule.from_json(r.to_json()) == r
    assert rules[1].text() == (
        "liquidations_blocked.readiness_gate at least 2 and at most 9 during oracle-zero (+5s after heal)"
    )
    assert parse_sometimes(None, W, LABELS) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "sometimes:\n  - {during: nope, count: fills}\n",
            "s.yaml:2: sometimes[0].during: unknown fault window 'nope'; allowed: db-restart, oracle-zero, all_faults, run",
        ),
        (
            "sometimes:\n  - {during: 5, count: fills}\n",
            "timeline index 5 out of range (the timeline has 2 entries)",
        ),
        (
            "sometimes:\n  - {during: run, count: trades}\n",
            "unknown counter 'trades'; allowed: ops, ops_ok",
        ),
        (
            "sometimes:\n  - {during: run, count: fills, at_least: -1}\n",
            "expected a non-negative integer, got -1",
        ),
        (
            "sometimes:\n  - {during: run, count: fills, at_least: 5, at_most: 2}\n",
            "at_most (2) is below at_least (5)",
        ),
        ("sometimes:\n  - {during: run, count: fills, extend: soon}\n", "expected a duration"),
        (
            "sometimes:\n  - {during: run, count: fills, when: now}\n",
            "unknown key 'when'; allowed: during, count",
        ),
        ("sometimes:\n  - {count: fills}\n", "missing 'during'"),
        (
            "sometimes:\n  - {during: run, count: fills, profiles: [nightly]}\n",
            "unknown profile 'nightly'; allowed: vulnerable, hardened",
        ),
        ("sometimes: {during: run}\n", "expected a list of"),
    ],
)
def test_sometimes_bad_input(text: str, expected: str) -> None:
    with pytest.raises(ScenarioError) as err:
        parse_sometimes(
            section(text, "sometimes"), W.child("sometimes"), LABELS, ["vulnerable", "hardened"]
        )
    assert expected in str(err.value)


NAMES = ["no_zero_price_liquidations", "liquidations_justified", "fund_conservation"]
PROFILES = ["vulnerable", "hardened"]


def test_expect_per_profile() -> None:
    sec = section(
        "expect:\n  vulnerable: {violated: [no_zero_price_liquidations, liquidations_justified]}\n"
        "  hardened: {all_hold: true}\n",
        "expect",
    )
    out = parse_expect(sec, W.child("expect"), NAMES, PROFILES)
    assert out == {
        "vulnerable": Expectation(
            violated=("no_zero_price_liquidations", "liquidations_justified")
        ),
        "hardened": Expectation(all_hold=True),
    }
    assert out["hardened"].to_json() == {"all_hold": True}
    assert Expectation.from_json(out["vulnerable"].to_json()) == out["vulnerable"]
    assert parse_expect(None, W, NAMES, PROFILES) == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "expect:\n  staging: {all_hold: true}\n",
            "s.yaml:2: expect.staging: unknown profile 'staging'; the stack's profiles: vulnerable, hardened",
        ),
        (
            "expect:\n  hardened: {all_hold: false}\n",
            "expected true (use violated: [...] to expect failures)",
        ),
        (
            "expect:\n  vulnerable: {violated: [steady_state]}\n",
            "'steady_state' is not among this scenario's invariants; allowed: no_zero_price_liquidations",
        ),
        ("expect:\n  vulnerable: {violated: []}\n", "expected a non-empty list of invariant names"),
        (
            "expect:\n  vulnerable: {violated: [fund_conservation], all_hold: true}\n",
            "expected exactly one of",
        ),
        (
            "expect:\n  vulnerable: {fails: [fund_conservation]}\n",
            "unknown key 'fails'; allowed: violated, all_hold",
        ),
        (
            "expect:\n  vulnerable: {violated: [fund_conservation, fund_conservation]}\n",
            "listed twice",
        ),
        ("expect: [hardened]\n", "expected a mapping of profile"),
    ],
)
def test_expect_bad_input(text: str, expected: str) -> None:
    with pytest.raises(ScenarioError) as err:
        parse_expect(section(text, "expect"), W.child("expect"), NAMES, PROFILES)
    assert expected in str(err.value)
