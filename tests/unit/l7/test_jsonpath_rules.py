"""The L7 proxy's rule model and JSON paths: parsing, validation, matching."""

from __future__ import annotations

import pytest
from l2chaos.l7proxy.jsonpath import JsonPath, JsonPathError
from l2chaos.l7proxy.rules import Corrupt, Delay, Error, Match, Rule, RuleError, Status


@pytest.mark.parametrize(
    ("path", "segments"),
    [
        ("result.status", ("result", "status")),
        ("$.prices[*].price", ("prices", "*", "price")),
        ("result[0].hash", ("result", 0, "hash")),
        ('a["b.c"][-1]', ("a", "b.c", -1)),
    ],
)
def test_paths_parse(path: str, segments: tuple[object, ...]) -> None:
    assert JsonPath.parse(path).segments == segments


@pytest.mark.parametrize("bad", ["", "$", "a..b", "a[x]", "a[", "a.b)"])
def test_bad_paths_say_where(bad: str) -> None:
    with pytest.raises(JsonPathError):
        JsonPath.parse(bad)


def test_assign_sets_every_reached_place_and_creates_nothing() -> None:
    doc = {"prices": [{"price": 5}, {"price": 7}, {"other": 1}], "n": 1}
    assert JsonPath.parse("prices[*].price").assign(doc, 0) == 2
    assert doc["prices"] == [{"price": 0}, {"price": 0}, {"other": 1}]
    assert JsonPath.parse("missing.key").assign(doc, 0) == 0
    assert "missing" not in doc
    assert JsonPath.parse("prices[9].price").assign(doc, 1) == 0
    assert JsonPath.parse("n[*]").find(doc) == []


def test_rule_round_trips_through_json() -> None:
    rule = Rule(
        id="r1",
        family="rpc",
        action=Corrupt(set=(("result.price", 0), ("result.tag", "x")), target="response"),
        match=Match(methods=("starknet_*",)),
        probability=0.5,
        seed=42,
        label="rpc.corrupt",
    )
    again = Rule.from_json(rule.to_json())
    assert again == rule


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"id": "a", "family": "tcp", "action": {"kind": "error"}}, "family"),
        ({"id": "a", "family": "http", "action": {"kind": "error"}}, "not an action of the http"),
        ({"id": "a", "family": "rpc", "action": {"kind": "status"}}, "not an action of the rpc"),
        ({"id": "a", "family": "rpc", "action": {"kind": "nope"}}, "action.kind"),
        ({"id": "a", "family": "rpc", "action": {"kind": "error", "when": "later"}}, "when"),
        (
            {"id": "a", "family": "rpc", "action": {"kind": "error", "code": "x"}},
            "code must be int",
        ),
        ({"id": "a", "family": "rpc", "action": {"kind": "error", "zzz": 1}}, "unknown keys"),
        ({"id": "a", "family": "rpc", "action": {"kind": "corrupt", "set": []}}, "at least one"),
        ({"id": "a", "family": "rpc", "action": {"kind": "corrupt", "set": [["a[", 1]]}}, "set:"),
        (
            {"id": "a", "family": "rpc", "action": {"kind": "delay"}, "probability": 2},
            "probability",
        ),
        ({"id": "a/b", "family": "rpc", "action": {"kind": "delay"}}, "id"),
        ({"id": "a", "family": "http", "action": {"kind": "status", "status": 99}}, "status"),
        ({"id": "a", "family": "rpc", "action": {"kind": "delay"}, "seed": "s"}, "seed"),
        (
            {"id": "a", "family": "rpc", "action": {"kind": "delay"}, "match": {"methods": "x"}},
            "list of strings",
        ),
        ("nope", "JSON object"),
    ],
)
def test_bad_rules_are_refused_with_the_reason(body: object, needle: str) -> None:
    with pytest.raises(RuleError, match=needle):
        Rule.from_json(body)


def test_match_globs_methods_paths_and_verbs() -> None:
    m = Match(methods=("eth_get*", "starknet_call"))
    assert m.method("eth_getBalance")
    assert m.method("starknet_call")
    assert not m.method("eth_sendRawTransaction")
    assert Match().method("anything")
    h = Match(paths=("/v1/orders*",), verbs=("POST",))
    assert h.request("post", "/v1/orders")
    assert not h.request("GET", "/v1/orders")
    assert not h.request("POST", "/v1/markets")


def test_delay_draw_spreads_jitter_and_never_goes_negative() -> None:
    d = Delay(latency_ms=100, jitter_ms=50)
    assert d.draw_s(0.0) == pytest.approx(0.05)
    assert d.draw_s(0.5) == pytest.approx(0.1)
    assert Delay(latency_ms=10, jitter_ms=50).draw_s(0.0) == 0.0


def test_actions_check_their_ranges() -> None:
    with pytest.raises(RuleError):
        Status(status=700).check()
    with pytest.raises(RuleError):
        Error(when="maybe").check()
