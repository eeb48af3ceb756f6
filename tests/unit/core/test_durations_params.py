from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

import pytest
from l2chaos.durations import Duration, format_duration, parse_duration
from l2chaos.errors import ScenarioError
from l2chaos.params import (
    ModelError,
    NoParams,
    Ratio,
    Where,
    bind,
    declared_model,
    fields_of,
    from_json,
    json_schema,
    param,
    params,
    required,
    rows,
    scaled,
    to_json,
)
from l2chaos.yamlsrc import load_yaml_text


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("500ms", 500_000_000),
        ("30s", 30 * 10**9),
        ("2m", 120 * 10**9),
        ("1m30s", 90 * 10**9),
        ("1.5s", 1_500_000_000),
        ("250us", 250_000),
        ("-5s", -5 * 10**9),
        ("1h", 3600 * 10**9),
    ],
)
def test_parse_duration(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize("bad", ["30", "", "s", "30 seconds", "1d", "5ss", None, 30])
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match="expected a duration such as 500ms"):
        parse_duration(bad)  # type: ignore[arg-type]


def test_format_duration_round_trips() -> None:
    for ns in (0, 500_000_000, 30 * 10**9, 90 * 10**9, 120 * 10**9, 1_500_000_000):
        assert parse_duration(format_duration(ns)) == ns
    assert format_duration(120 * 10**9) == "2m"
    assert format_duration(90 * 10**9) == "90s"


def test_duration_is_a_value_not_a_number() -> None:
    d = Duration.of(s=1, ms=500)
    assert d == Duration.parse("1.5s") == Duration(1_500_000_000)
    assert (d.seconds, d.millis, str(d)) == (1.5, 1500.0, "1500ms")
    assert d + Duration.of(ms=500) == Duration.of(s=2)
    assert d * 2 == 2 * d == Duration.of(s=3)
    assert Duration.of(s=1) < Duration.of(s=2)
    assert not Duration(0)
    assert bool(Duration(1))


@params
class Example:
    latency: Duration = required("added delay")
    toxicity: Ratio = param(1.0, "share")
    count: int = param(3, "how many", min=1, max=10)
    mode: Literal["fast", "immediate"] = param("fast", "how")
    hold: tuple[Duration, Duration] = param(
        (Duration.of(s=1), Duration.of(s=2)), "hold range", schedule=True
    )
    names: tuple[str, ...] = param((), "names")
    weights: Mapping[str, float] = param({"a": 1.0}, "weights")
    target: int | None = param(None, "a block", min=0)


def bind_text(text: str) -> Example:
    doc = load_yaml_text(text, "f.yaml")
    return bind(Example, doc, Where("f.yaml", "with"))


def test_bind_fills_defaults_and_converts() -> None:
    out = bind_text("latency: 200ms\nhold: [2s, 8s]\nnames: one\ntarget: 7\n")
    assert out == Example(
        latency=Duration.of(ms=200),
        toxicity=1.0,
        count=3,
        mode="fast",
        hold=(Duration.of(s=2), Duration.of(s=8)),
        names=("one",),
        weights={"a": 1.0},
        target=7,
    )
    assert bind_text("latency: 1s\ntarget: null\n").target is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("toxicity: 0.5\n", "f.yaml:1: with: missing required parameter 'latency'"),
        (
            "latency: 1s\ncount: 0\n",
            "f.yaml:2: with.count: expected an integer (>= 1, <= 10), got 0",
        ),
        (
            "latency: 1s\ntoxicity: 2\n",
            "f.yaml:2: with.toxicity: expected a number between 0 and 1, got 2",
        ),
        (
            "latency: 1s\nmode: slow\n",
            "f.yaml:2: with.mode: expected one of fast, immediate, got 'slow'",
        ),
        (
            "latency: 1s\nhold: [8s, 2s]\n",
            "f.yaml:2: with.hold: expected a pair [low, high] of durations",
        ),
        (
            "latency: 1s\nlatncy: 2s\n",
            "f.yaml:2: with.latncy: unknown parameter 'latncy'; allowed: count, hold",
        ),
        ("latency: true\n", "f.yaml:1: with.latency: expected a duration such as 500ms"),
        ("latency: 0s\n", "f.yaml:1: with.latency: must be a positive duration, got '0s'"),
        (
            "latency: 1s\nweights: {a: x}\n",
            "f.yaml:2: with.weights: expected a number for 'a', got 'x'",
        ),
        (
            "latency: 1s\ntarget: -1\n",
            "f.yaml:2: with.target: expected an integer (>= 0), or null, got -1",
        ),
    ],
)
def test_bind_errors(text: str, message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        bind_text(text)
    assert str(info.value).startswith(message)


def test_catalogue_rows() -> None:
    shown = {name: (default, help_) for name, _, default, help_ in rows(Example)}
    assert shown["latency"] == ("required", "added delay")
    assert shown["mode"] == ("'fast'", "how")
    assert shown["hold"] == ("[1s, 2s]", "hold range (shrinks with time_scale)")
    assert shown["target"] == ("null", "a block")
    assert shown["weights"] == ("{a: 1}", "weights")


def test_schedule_durations_scale_and_magnitudes_do_not() -> None:
    p = bind_text("latency: 1s\nhold: [2s, 8s]\n")
    half = scaled(p, 0.5)
    assert half.hold == (Duration.of(s=1), Duration.of(s=4))
    assert half.latency == Duration.of(s=1)
    assert scaled(p, 1.0) is p


def test_the_record_round_trips() -> None:
    p = bind_text("latency: 1s\nnames: [a, b]\n")
    record = to_json(p)
    assert record["latency"] == 1_000_000_000
    assert record["hold"] == [1_000_000_000, 2_000_000_000]
    assert record["names"] == ["a", "b"]
    assert from_json(Example, record, Where("r.json", "params")) == p
    with pytest.raises(ScenarioError, match=r"r.json: params.latency: expected nanoseconds"):
        from_json(Example, {**record, "latency": "1s"}, Where("r.json", "params"))


def test_json_schema() -> None:
    schema: dict[str, Any] = json_schema(Example)
    assert schema["required"] == ["latency"]
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert props["count"]["minimum"] == 1
    assert props["count"]["maximum"] == 10
    assert props["mode"]["enum"] == ["fast", "immediate"]
    assert props["hold"]["default"] == "[1s, 2s]"
    assert props["latency"]["pattern"].startswith("^")


def test_models_a_plugin_author_gets_wrong_are_named() -> None:
    @params
    class Untyped:
        x: complex = param(1j, "a complex number")

    @params
    class Bare:
        x: int = 3

    @params
    class BadDefault:
        x: int = param(0, "at least one", min=1)

    @params
    class ScheduledCount:
        x: int = param(1, "not a duration", schedule=True)

    for model, words in (
        (Untyped, "unsupported parameter type"),
        (Bare, "declare it with param(default, help)"),
        (BadDefault, "its default 0 is not an integer (>= 1)"),
        (ScheduledCount, "schedule=True needs a duration type"),
    ):
        with pytest.raises(ModelError, match=re.escape(words)):
            fields_of(model)


def test_the_model_is_the_type_argument() -> None:
    from l2chaos.faults.network import Latency, LatencyParams, Partition

    assert Latency.params_model() is LatencyParams
    assert Partition.params_model() is NoParams
    assert declared_model(int, object) is NoParams
