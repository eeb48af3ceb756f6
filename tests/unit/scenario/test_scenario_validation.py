"""Bad scenarios: each gets one message naming file, line, field and what is allowed."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from l2chaos.durations import Duration
from l2chaos.errors import InputError, ScenarioError
from l2chaos.faults.nemesis import RandomNemesis
from l2chaos.scenario import load_scenario, parse_stack_settings
from l2chaos.stacks.perpdex import STACK_FILE
from l2chaos.stackspec import load_stack

from tests._support.teststack import GOOD_SCENARIO as GOOD
from tests._support.teststack import TESTSTACK as STACK


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "scenario.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def error_of(tmp_path: Path, text: str, **kwargs: object) -> str:
    p = write(tmp_path, text)
    with pytest.raises(InputError) as info:
        load_scenario(p, **kwargs)  # type: ignore[arg-type]
    return str(info.value).replace(str(p), "scenario.yaml")


def test_good_scenario_loads_and_scales(tmp_path: Path) -> None:
    sc = load_scenario(write(tmp_path, GOOD), time_scale=0.5)
    assert sc.name == "good"
    assert sc.seed == 7
    assert sc.duration_ns == 30_000_000_000
    assert [f.name for f in sc.timeline] == ["network.latency", "process.restart_race"]
    latency, race = sc.timeline
    assert latency.at_ns == 5_000_000_000
    assert latency.for_ns == 2_500_000_000
    assert latency.fault.p.latency == Duration.of(ms=200)  # a magnitude: not scaled
    assert race.at_ns == 10_000_000_000
    assert race.for_ns == 2_000_000_000  # implied by the downtime, a schedule duration
    assert sc.stack.switches == {"guard": False}


def test_an_open_loop_spike_follows_the_time_scale(tmp_path: Path) -> None:
    text = (
        GOOD + "load:\n  users: 4\n  rate: {shape: spike, ops: 20, factor: 10, at: 20s, for: 10s}\n"
    )
    sc = load_scenario(write(tmp_path, text), time_scale=0.5)
    assert sc.load is not None
    rate = sc.load.rate
    assert rate is not None
    assert [rate.target(t) for t in (9.9, 10, 14.9, 15)] == [20, 200, 200, 20]  # ops: a magnitude


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            GOOD.replace("duration: 60s", "durations: 60s"),
            "scenario.yaml:4: durations: unknown key 'durations'; allowed: name, description",
            id="unknown-top-key",
        ),
        pytest.param(
            GOOD.replace("seed: 7", "seed: seven"),
            "scenario.yaml:2: seed: expected an integer, got 'seven'",
            id="wrong-type",
        ),
        pytest.param(
            GOOD.replace("fault: network.latency", "fault: network.latenc"),
            "scenario.yaml:7: timeline[0].fault: unknown fault 'network.latenc'; in that family: ",
            id="unknown-fault",
        ),
        pytest.param(
            GOOD.replace("fault: network.latency", "fault: meteor.strike"),
            "scenario.yaml:7: timeline[0].fault: unknown fault 'meteor.strike'; known: ",
            id="unknown-fault-family",
        ),
        pytest.param(
            GOOD.replace("target: worker->api", "target: api->worker"),
            "scenario.yaml:8: timeline[0].target: unknown link 'api->worker'; links: api->db, worker->api",
            id="unknown-link",
        ),
        pytest.param(
            GOOD.replace("target: db", "target: dbb"),
            "scenario.yaml:13: timeline[1].target: unknown service 'dbb'; services: db, api, worker",
            id="unknown-service",
        ),
        pytest.param(
            GOOD.replace("at: 10s", "at: -5s"),
            "scenario.yaml:6: timeline[0].at: must be zero or more, got '-5s'",
            id="negative-duration",
        ),
        pytest.param(
            GOOD.replace("for: 5s", "for: 0s"),
            "scenario.yaml:9: timeline[0].for: must be a positive duration, got '0s'",
            id="zero-duration",
        ),
        pytest.param(
            GOOD.replace("at: 10s", "at: 50s").replace("for: 5s", "for: 20s"),
            "scenario.yaml:9: timeline[0].for: ends at 70s, past the end of the run (duration 1m); shorten it",
            id="past-the-end",
        ),
        pytest.param(
            GOOD.replace("at: 20s", "at: 2m"),
            "scenario.yaml:11: timeline[1].at: scheduled at 2m, at or after the end of the run (duration 1m)",
            id="after-the-end",
        ),
        pytest.param(
            GOOD + "  - at: 22s\n    fault: process.kill\n    target: db\n",
            "scenario.yaml:15: timeline[2]: process.kill on db overlaps timeline[1] (process.restart_race on db) "
            "and both need service:db; they cannot coexist",
            id="overlap",
        ),
        pytest.param(
            GOOD + "  - at: 40s\n    fault: http.call\n    target: api\n    with: {method: GET}\n",
            "scenario.yaml:18: timeline[2].with: missing required parameter 'path' (a string)",
            id="missing-param",
        ),
        pytest.param(
            GOOD.replace("duration: 60s", "duration: 60 seconds"),
            "scenario.yaml:4: duration: expected a duration such as 500ms, 30s, 2m or 1m30s, got '60 seconds'",
            id="bad-duration",
        ),
        pytest.param(
            GOOD.replace("with: {latency: 200ms}", "with: {latency: 200ms, latencyy: 1s}"),
            "scenario.yaml:10: timeline[0].with.latencyy: unknown parameter 'latencyy'; allowed: ",
            id="unknown-param",
        ),
        pytest.param(
            GOOD.replace("with: {latency: 200ms}", "with: {latency: fast}"),
            "scenario.yaml:10: timeline[0].with.latency: expected a duration such as 500ms",
            id="param-wrong-type",
        ),
        pytest.param(
            GOOD + "  - at: 40s\n    fault: oracle.zero\n    target: db\n    for: 5s\n",
            "scenario.yaml:17: timeline[2].target: oracle.zero acts on the whole stack and takes no target",
            id="target-not-allowed",
        ),
        pytest.param(
            GOOD + "  - at: 40s\n    fault: oracle.zero\n",
            "scenario.yaml:15: timeline[2]: oracle.zero lasts over a window: give 'for' (e.g. for: 10s)",
            id="window-required",
        ),
        pytest.param(
            GOOD + "  - at: 40s\n    fault: chain.rollback\n",
            "scenario.yaml:16: timeline[2].fault: chain.rollback needs the stack hook 'rollback', "
            "which stack 'teststack' does not provide (it has: oracle_mode)",
            id="missing-hook",
        ),
        pytest.param(
            GOOD.replace("profile: weak", "profile: medium"),
            "scenario.yaml:3: stack.profile: unknown profile 'medium' (stack.profile); stack 'teststack' has: weak, strong",
            id="unknown-profile",
        ),
        pytest.param(
            GOOD.replace("profile: weak}", "profile: weak, switches: {gaurd: true}}"),
            "scenario.yaml:3: stack.switches.gaurd: unknown switch 'gaurd'; stack 'teststack' has: guard",
            id="unknown-switch",
        ),
        pytest.param(
            GOOD.replace("profile: weak}", "profile: weak, settings: {tick: 0ms}}"),
            "scenario.yaml:3: stack.settings.tick: expected a positive duration such as 100ms, got '0ms'",
            id="bad-setting",
        ),
        pytest.param(
            GOOD.replace("name: good", "name: Good Scenario"),
            "scenario.yaml:1: name: expected a lower-case name",
            id="bad-name",
        ),
        pytest.param(
            GOOD.replace("seed: 7\n", "seed: 7\nseed: 8\n"),
            "scenario.yaml:3: duplicate key 'seed' (first on line 2)",
            id="duplicate-key",
        ),
        pytest.param(
            GOOD.replace("duration: 60s\n", ""),
            "scenario.yaml:1: missing required key 'duration'",
            id="missing-key",
        ),
        pytest.param(
            GOOD.replace("timeline:\n", "timeline: [\n"),
            "scenario.yaml:",
            id="invalid-yaml",
        ),
        pytest.param(
            GOOD.replace("target: worker->api", "target: [worker->api, api->db]"),
            "scenario.yaml:8: timeline[0].target: network.latency acts on one link, got a list",
            id="list-for-one-link",
        ),
        pytest.param(
            GOOD.replace("fault: process.restart_race", "fault: process.restart").replace(
                "    with: {downtime: 4s}\n", "    for: 3s\n"
            ),
            "scenario.yaml:14: timeline[1].for: process.restart happens at an instant and takes no 'for'",
            id="instant-with-for",
        ),
        pytest.param(
            f"name: x\nstack: {STACK}/nope\nduration: 10s\n",
            "scenario.yaml:2: stack.ref: unknown stack",
            id="unknown-stack",
        ),
    ],
)
def test_bad_input_names_file_line_field(tmp_path: Path, text: str, expected: str) -> None:
    assert error_of(tmp_path, text).startswith(expected)


def test_invalid_yaml_names_line(tmp_path: Path) -> None:
    msg = error_of(tmp_path, GOOD.replace("  - at: 20s", "  - at: 20s\n   bad: [indent"))
    assert msg.startswith("scenario.yaml:")
    assert "invalid YAML" in msg


def test_set_override_is_validated_like_the_file(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD)
    sc = load_scenario(p, ["timeline[0].with.latency=1s", "seed=99"])
    assert sc.seed == 99
    assert sc.timeline[0].fault.p.latency == Duration.of(s=1)
    with pytest.raises(ScenarioError, match=r"timeline\[0\]\.with\.latency: expected a duration"):
        load_scenario(p, ["timeline[0].with.latency=soon"])
    with pytest.raises(ScenarioError, match=r"--set timeline\[9\]: no such list item"):
        load_scenario(p, ["timeline[9].at=1s"])
    with pytest.raises(ScenarioError, match="--set expects KEY=VALUE"):
        load_scenario(p, ["seed"])


def test_profile_override_and_time_scale_bounds(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD)
    assert load_scenario(p, profile="strong").stack.switches == {"guard": True}
    with pytest.raises(ScenarioError, match=r"unknown profile 'x' \(--profile\)"):
        load_scenario(p, profile="x")
    with pytest.raises(ScenarioError, match=r"time_scale: expected a number from 0.01 to 100"):
        load_scenario(p, time_scale=0)


NEMESIS = f"""\
name: soak
stack: {{ref: {STACK}}}
duration: 60s
timeline:
  - at: 5s
    fault: nemesis.random
    for: 50s
    with:
      every: [1s, 3s]
      faults:
        - {{fault: network.latency, target: worker->api, with: {{latency: 100ms}}}}
        - {{fault: process.pause, target: api}}
"""


def test_nemesis_draws_faults_held_by_its_hold_range(tmp_path: Path) -> None:
    sc = load_scenario(write(tmp_path, NEMESIS), time_scale=0.5)
    nemesis = sc.timeline[0].fault
    assert isinstance(nemesis, RandomNemesis)
    assert [u.name for u in nemesis._choices] == ["network.latency", "process.pause"]
    every = (Duration.of(ms=500), Duration.of(ms=1500))
    assert nemesis.p.every == every  # schedule durations scale
    assert nemesis.resources() == {"service:api"} | nemesis._choices[0].fault.resources()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("process.pause, target: api", "process.pauze, target: api"),
            "scenario.yaml:12: timeline[0].with.faults[1].fault: unknown fault 'process.pauze'",
        ),
        (
            ("process.pause, target: api", "process.pause, target: nope"),
            "scenario.yaml:12: timeline[0].with.faults[1].target: unknown service 'nope'",
        ),
        (
            (
                "process.pause, target: api}",
                "nemesis.random, with: {faults: [{fault: oracle.stale}]}}",
            ),
            "scenario.yaml:12: timeline[0].with.faults[1]: a nemesis cannot draw another nemesis",
        ),
    ],
)
def test_nemesis_sub_faults_are_validated(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    assert error_of(tmp_path, NEMESIS.replace(*change)).startswith(expected)


@pytest.mark.parametrize("section", ["", "load:\n", "load: none\n", "load: {users: 0}\n"])
def test_no_load_section_means_no_load(tmp_path: Path, section: str) -> None:
    sc = load_scenario(write(tmp_path, GOOD + section))
    assert sc.load is None
    assert sc.resolved().load is None


def test_a_load_section_takes_the_default_protocol(tmp_path: Path) -> None:
    sc = load_scenario(write(tmp_path, GOOD + "load: {users: 3}\n"))
    assert sc.load is not None
    assert sc.load.protocol == "perpdex"
    assert sc.load.users == 3


def test_set_reaches_into_the_stack_shorthand(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text(f"name: short\nstack: {STACK}\nduration: 30s\n")
    sc = load_scenario(p, ["stack.profile=weak", "stack.settings.tick=250ms"])
    assert (sc.profile, sc.stack.settings["tick"]) == ("weak", 250_000_000)


def test_stack_settings_from_set_pairs_are_checked_as_a_scenarios_are() -> None:
    spec = load_stack(STACK_FILE)
    got = parse_stack_settings(spec, ["block_interval=50ms", "accounts=12"])
    assert got == {"block_interval": 50_000_000, "accounts": 12}
    bad = {
        "block_interval=1ns": "--set: block_interval: expected a duration such as 100ms "
        "(>= 5ms, <= 1m), got '1ns'",
        "accounts=x": "--set: accounts: expected an integer (>= 1, <= 1000000), got 'x'",
        "nope=3": "--set: expected NAME=VALUE with NAME one of block_interval, ",
        "accounts": "--set: expected NAME=VALUE",
    }
    for pair, message in bad.items():
        with pytest.raises(InputError) as info:
            parse_stack_settings(spec, [pair])
        assert str(info.value).startswith(message), str(info.value)
