"""Parameters, validation, windows, resources and toxics of the network and process faults."""

from __future__ import annotations

from typing import Any

import pytest
from l2chaos.errors import ScenarioError
from l2chaos.faults.base import Fault, Target, TargetKind, Window
from l2chaos.faults.network import (
    Bandwidth,
    Down,
    Latency,
    LimitData,
    Partition,
    ResetPeer,
    Slicer,
    SlowClose,
    Timeout,
    ToxicFault,
)
from l2chaos.faults.process import (
    CrashLoop,
    Disconnect,
    Kill,
    Pause,
    Restart,
    RestartRace,
    Stop,
)
from l2chaos.params import Duration, NoParams, Where, bind, fields_of
from l2chaos.registry import faults

S = Duration.of(s=1)
SERVICES = {"db", "api", "front"}
LINKS = {"api->db", "front->api", "front->db"}
TOXIC_FAULTS: list[type[ToxicFault[Any]]] = [
    Latency, Bandwidth, Timeout, ResetPeer, Slicer, LimitData, SlowClose,
]  # fmt: skip
PROCESS_FAULTS: list[type[Fault[Any]]] = [
    Kill, Stop, Restart, Pause, RestartRace, CrashLoop, Disconnect,
]  # fmt: skip


def params_of(cls: type[Fault[Any]], given: dict[str, Any]) -> Any:
    return bind(cls.params_model(), given, Where("s.yaml", "timeline[0].with"))


def link_fault(cls: type[Fault[Any]], given: dict[str, Any], link: str = "front->api") -> Any:
    return cls.build(Target(TargetKind.LINK, links=(link,), text=link), given, S)


def svc_fault(cls: type[Fault[Any]], given: dict[str, Any], window: Duration | None = S) -> Any:
    target = Target(TargetKind.SERVICE, services=("api",), text="api")
    return cls(target, params_of(cls, given), window)  # no implied window: tested below


def test_all_are_registered_with_documented_params() -> None:
    reg = faults()
    every: list[type[Fault[Any]]] = [*TOXIC_FAULTS, Down, Partition, *PROCESS_FAULTS]
    for cls in every:
        assert reg[cls.name] is cls
        assert cls.summary
        for f in fields_of(cls.params_model()):
            assert f.help, f"{cls.name}.{f.name} has no help"


@pytest.mark.parametrize("cls", TOXIC_FAULTS)
def test_toxic_faults_take_stream_and_toxicity(cls: type[ToxicFault[Any]]) -> None:
    names = {f.name for f in fields_of(cls.params_model())}
    assert {"stream", "toxicity"} <= names
    f = link_fault(cls, {"stream": "both", "toxicity": 0.25})
    toxics = f.toxics()
    assert [t.stream for t in toxics] == ["upstream", "downstream"]
    assert {t.toxicity for t in toxics} == {0.25}
    assert {t.type for t in toxics} == {cls.toxic_type}
    assert len({t.name for t in toxics}) == 2
    assert f.resources() == set()  # toxics are named per fault: they coexist
    assert cls.window is Window.REQUIRED


def test_defaults_per_kind() -> None:
    defaults = {cls.name: params_of(cls, {}).stream for cls in TOXIC_FAULTS}
    assert defaults == {
        "network.latency": "downstream",
        "network.bandwidth": "downstream",
        "network.timeout": "both",
        "network.reset_peer": "upstream",
        "network.slicer": "downstream",
        "network.limit_data": "downstream",
        "network.slow_close": "downstream",
    }
    assert params_of(Timeout, {}).timeout == Duration(0)  # a black hole unless told otherwise


def test_attributes_are_converted_to_toxiproxy_units() -> None:
    lat = link_fault(Latency, {"latency": "1.5s", "jitter": "20ms"})
    assert lat.attributes() == {"latency": 1500, "jitter": 20}
    sl = link_fault(Slicer, {"average_size": 10, "size_variation": 2, "delay": "3ms"})
    assert sl.attributes() == {"average_size": 10, "size_variation": 2, "delay": 3000}  # µs
    assert link_fault(Bandwidth, {"rate": 7}).attributes() == {"rate": 7}
    assert link_fault(LimitData, {"bytes": 0}).attributes() == {"bytes": 0}
    assert link_fault(SlowClose, {"delay": "2s"}).attributes() == {"delay": 2000}
    assert link_fault(ResetPeer, {"timeout": "250ms"}).attributes() == {"timeout": 250}


def test_toxic_names_are_unique_per_fault() -> None:
    a, b = link_fault(Latency, {}), link_fault(Latency, {})
    assert a.toxic_names() != b.toxic_names()
    assert a.toxic_names()[0].startswith("l2c-latency-")


@pytest.mark.parametrize(
    ("cls", "given", "message"),
    [
        (Latency, {"toxicity": 1.5}, "toxicity: expected a number between 0 and 1, got 1.5"),
        (Latency, {"stream": "sideways"}, "stream: expected one of upstream, downstream, both"),
        (Latency, {"latency": 300}, "latency: expected a duration such as 500ms"),
        (Latency, {"latency": "-1s"}, "latency: expected a duration such as 500ms, 30s, 2m or 1m30s (>= 0s)"),
        (Bandwidth, {"rate": -1}, "rate: expected an integer (>= 0), got -1"),
        (Bandwidth, {"rate": "fast"}, "rate: expected an integer"),
        (Slicer, {"average_size": 0}, "average_size: expected an integer (>= 1), got 0"),
        (LimitData, {"bytes": 1.5}, "bytes: expected an integer"),
        (Latency, {"latence": "1s"}, "unknown parameter 'latence'; allowed: jitter, latency, stream, toxicity"),
        (CrashLoop, {"count": 0}, "count: expected an integer (>= 1, <= 1000), got 0"),
        (RestartRace, {"how": "slow"}, "how: expected one of fast, immediate"),
        (RestartRace, {"downtime": "0s"}, "downtime: must be a positive duration"),
        (Kill, {"signal": 9}, "unknown parameter 'signal'; allowed: ready_timeout"),
        (Pause, {"x": 1}, "unknown parameter 'x'; allowed: none"),
    ],
)  # fmt: skip
def test_bad_parameters_are_named(
    cls: type[Fault[Any]], given: dict[str, Any], message: str
) -> None:
    with pytest.raises(ScenarioError) as err:
        params_of(cls, given)
    assert str(err.value).startswith("s.yaml: timeline[0].with")
    assert message in str(err.value)


def test_slicer_variation_must_be_below_average() -> None:
    f = link_fault(Slicer, {"average_size": 10, "size_variation": 10})
    assert (
        f.validate(SERVICES, LINKS) == "size_variation (10) must be smaller than average_size (10)"
    )
    assert (
        link_fault(Slicer, {"average_size": 10, "size_variation": 9}).validate(SERVICES, LINKS)
        is None
    )


def test_windows() -> None:
    assert Kill.window is Window.OPTIONAL
    assert Restart.window is Window.INSTANT
    for cls in (Stop, Pause, RestartRace, CrashLoop, Disconnect, Down, Partition):
        assert cls.window is Window.REQUIRED


def test_restart_race_lasts_its_downtime() -> None:
    f = svc_fault(RestartRace, {"downtime": "3s"}, None)
    assert f.implied_duration() == S * 3
    f.duration = f.implied_duration()
    assert f.validate(SERVICES, LINKS) is None
    g = svc_fault(RestartRace, {"downtime": "3s"}, S * 5)
    assert "set with.downtime instead of 'for'" in (g.validate(SERVICES, LINKS) or "")
    assert {f.name for f in fields_of(RestartRace.params_model()) if f.schedule} == {"downtime"}


def test_crash_loop_lasts_count_intervals() -> None:
    f = svc_fault(CrashLoop, {"count": 4, "interval": "500ms"}, None)
    assert f.implied_duration() == S * 2
    assert {f.name for f in fields_of(CrashLoop.params_model()) if f.schedule} == {"interval"}


@pytest.mark.parametrize("cls", [Kill, Stop, Restart, Pause, RestartRace, CrashLoop])
def test_process_faults_own_their_service(cls: type[Fault[Any]]) -> None:
    assert svc_fault(cls, {}).resources() == {"service:api"}
    assert cls.target_kind is TargetKind.SERVICE


def test_disconnect_holds_the_service_and_its_links() -> None:
    f = svc_fault(Disconnect, {})
    assert f.validate(SERVICES, LINKS) is None
    assert f.resources() == {"service:api", "link:api->db", "link:front->api"}


def test_down_and_partition_hold_their_links() -> None:
    assert link_fault(Down, {}).resources() == {"link:front->api"}
    p = Partition(
        Target(
            TargetKind.SERVICE_OR_LINKS, services=("db",), links=("api->db", "front->db"), text="db"
        ),
        NoParams(),
        S,
    )
    assert p.resources() == {"link:api->db", "link:front->db"}
    assert Partition.target_kind is TargetKind.SERVICE_OR_LINKS
    assert Down.target_kind is TargetKind.LINK
