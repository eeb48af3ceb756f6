from __future__ import annotations

import pytest
from l2chaos.durations import format_duration, parse_duration
from l2chaos.errors import ScenarioError
from l2chaos.params import Param, Where, bind_params, describe_default
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


SPECS = (
    Param("latency", "duration", help="added delay"),
    Param("toxicity", "ratio", default=1.0),
    Param("count", "int", default=3, min=1, max=10),
    Param("mode", "enum", default="fast", choices=("fast", "immediate")),
    Param("hold", "duration_range", default=[1_000_000_000, 2_000_000_000], schedule=True),
)


def bind(text: str) -> dict[str, object]:
    doc = load_yaml_text(text, "f.yaml")
    return bind_params(SPECS, doc, Where("f.yaml", "with"))


def test_bind_fills_defaults_and_converts() -> None:
    out = bind("latency: 200ms\nhold: [2s, 8s]\n")
    assert out == {
        "latency": 200_000_000,
        "toxicity": 1.0,
        "count": 3,
        "mode": "fast",
        "hold": [2 * 10**9, 8 * 10**9],
    }


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
    ],
)
def test_bind_errors(text: str, message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        bind(text)
    assert str(info.value).startswith(message)


def test_describe_default() -> None:
    assert [describe_default(p) for p in SPECS] == ["required", "1.0", "3", "'fast'", "[1s, 2s]"]
