"""The `load:` section: defaults, exact persona counts, and one clear error per mistake."""

from __future__ import annotations

import json
import textwrap

import pytest
from l2chaos.errors import ScenarioError, UsageError
from l2chaos.load import LOAD_PARAMS, LoadPlan, parse_load
from l2chaos.load.plan import split_counts
from l2chaos.load.protocols.perpdex import PERSONA_PARAMS
from l2chaos.params import Where
from l2chaos.registry import protocols
from l2chaos.yamlsrc import load_yaml_text

WHERE = Where("scn.yaml", "load")


def section(text: str) -> object:
    doc = load_yaml_text(textwrap.dedent(text), "scn.yaml")
    assert isinstance(doc, dict)
    return doc["load"]


def error(text: str) -> str:
    with pytest.raises(ScenarioError) as exc:
        parse_load(section(text), WHERE, 1)  # type: ignore[arg-type]
    return str(exc.value)


def test_defaults_give_a_complete_plan() -> None:
    plan = parse_load(None, WHERE, 7)
    assert plan.seed == 7
    assert plan.users == 10
    assert plan.workers == 0
    assert not plan.distributed
    assert plan.total_workers == 1
    assert sum(plan.counts.values()) == plan.users
    assert plan.protocol == "perpdex"
    assert [p.name for p in plan.personas] == list(PERSONA_PARAMS)
    maker = plan.persona("maker").settings
    assert maker["max_open"] == 4
    assert maker["think"] == [500_000_000, 2_000_000_000]


def test_counts_follow_weights_exactly() -> None:
    plan = parse_load(
        section(
            """\
            load:
              users: 60
              personas: {maker: 6, taker: 30, leveraged: 18, bridger: 6}
            """
        ),  # type: ignore[arg-type]
        WHERE,
        1,
    )
    assert plan.counts == {"maker": 6, "taker": 30, "leveraged": 18, "bridger": 6, "reader": 0}


def test_largest_remainder_counts_sum_to_users_and_are_stable() -> None:
    weights = {"maker": 1, "taker": 1, "leveraged": 1}
    assert split_counts(weights, 10) == {"maker": 4, "taker": 3, "leveraged": 3}
    assert split_counts(weights, 2) == {"maker": 1, "taker": 1, "leveraged": 0}
    assert split_counts({"maker": 0, "taker": 5}, 3) == {"maker": 0, "taker": 3}
    for users in range(1, 50):
        counts = split_counts({"maker": 2, "taker": 4, "leveraged": 3, "bridger": 1}, users)
        assert sum(counts.values()) == users


def test_persona_settings_override_defaults() -> None:
    plan = parse_load(
        section(
            """\
            load:
              leveraged: {leverage: [15, 19], long_ratio: 1.0, hold_polls: [2, 4]}
              taker: {think: [100ms, 300ms], markets: [BTC-USD-PERP]}
            """
        ),  # type: ignore[arg-type]
        WHERE,
        1,
    )
    lev = plan.persona("leveraged").settings
    assert lev["leverage"] == [15, 19]
    assert lev["long_ratio"] == 1.0
    assert lev["hold_polls"] == [2, 4]
    taker = plan.persona("taker").settings
    assert taker["think"] == [100_000_000, 300_000_000]
    assert taker["markets"] == ["BTC-USD-PERP"]


def test_plan_round_trips_through_json() -> None:
    plan = parse_load(
        section(
            """\
            load:
              users: 7
              workers: 2
              personas: {taker: 1, reader: 1}
              reader: {mix: {block_number: 1, positions: 2}}
            """
        ),  # type: ignore[arg-type]
        WHERE,
        99,
    )
    text = json.dumps(plan.to_json())
    again = LoadPlan.from_json(json.loads(text))
    assert again == plan
    assert again.distributed
    assert again.total_workers == 2
    assert again.max_users_per_worker() == 4


def test_overrides_recompute_counts() -> None:
    plan = parse_load(None, WHERE, 1)
    bigger = plan.with_overrides(users=24, workers=3, spawn_rate=5)
    assert bigger.users == 24
    assert bigger.workers == 3
    assert bigger.spawn_rate == 5.0
    assert sum(bigger.counts.values()) == 24
    assert plan.with_overrides(workers=0).distributed is False
    assert plan.with_overrides(workers=1).distributed is True
    with pytest.raises(UsageError, match="--workers"):
        plan.with_overrides(workers=-1)
    with pytest.raises(UsageError, match="--spawn-rate"):
        plan.with_overrides(spawn_rate=-1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "load: {usres: 5}\n",
            "scn.yaml:1: load.usres: unknown key 'usres' for protocol perpdex; allowed:",
        ),
        ("load:\n  users: -1\n", "scn.yaml:2: load.users: expected an integer (>= 0"),
        ("load:\n  protocol: ftp\n", "scn.yaml:2: load.protocol: unknown load protocol 'ftp'"),
        (
            "load:\n  protocol: evm\n  maker: {size_usd: [1, 2]}\n",
            "load.maker: unknown key 'maker' for protocol evm",
        ),
        ("load:\n  users: many\n", "load.users: expected an integer"),
        (
            "load:\n  personas: {makr: 1}\n",
            "scn.yaml:2: load.personas.makr: unknown persona 'makr'",
        ),
        (
            "load:\n  personas: {maker: -1}\n",
            "load.personas.maker: expected a weight (a number >= 0)",
        ),
        (
            "load:\n  personas: {maker: 0}\n",
            "load.personas: expected at least one persona with a positive weight",
        ),
        (
            "load:\n  maker: {spread_bps: [50, 5]}\n",
            "load.maker.spread_bps: expected a pair [low, high]",
        ),
        ("load:\n  maker: {sprd: 1}\n", "load.maker.sprd: unknown parameter 'sprd'"),
        (
            "load:\n  maker: {cancel_ratio: 0.9, refresh_ratio: 0.2}\n",
            "load.maker.refresh_ratio: cancel_ratio + refresh_ratio",
        ),
        (
            "load:\n  taker: {think: 1s}\n",
            "load.taker.think: expected a pair [low, high] of durations",
        ),
        (
            "load:\n  leveraged: {hold_polls: [1.5, 3]}\n",
            "load.leveraged.hold_polls: expected whole numbers",
        ),
        ("load:\n  reader: {mix: {blocks: 1}}\n", "load.reader.mix.blocks: unknown read 'blocks'"),
        ("load:\n  reader: {mix: {positions: 0}}\n", "load.reader.mix: expected at least one read"),
        ("load:\n  taker: [1, 2]\n", "load.taker: expected a mapping of taker settings"),
        ("load: 12\n", "load: expected a mapping"),
        ("load:\n  request_timeout: 5\n", "load.request_timeout: expected a duration"),
        ("load:\n  maker: {markets: [A, A]}\n", "load.maker.markets: lists a market twice"),
    ],
)
def test_bad_sections_get_one_clear_message(text: str, expected: str) -> None:
    assert expected in error(text)


def test_every_parameter_is_documented() -> None:
    for p in LOAD_PARAMS:
        assert p.help, p.name
    for name, cls in protocols().items():
        assert set(cls.default_weights) <= set(cls.personas), name
        for persona, params in cls.personas.items():
            names = [p.name for p in params]
            assert "think" in names
            for p in params:
                assert p.help, f"{name}.{persona}.{p.name}"


def test_users_zero_is_a_plan_without_users() -> None:
    plan = parse_load(section("load:\n  users: 0\n"), WHERE, 1)  # type: ignore[arg-type]
    assert plan.users == 0
    assert sum(plan.counts.values()) == 0


def test_the_default_protocol_comes_from_the_caller() -> None:
    plan = parse_load(None, WHERE, 1, default_protocol="starknet")
    assert plan.protocol == "starknet"
    assert LoadPlan.from_json(plan.to_json()) == plan
