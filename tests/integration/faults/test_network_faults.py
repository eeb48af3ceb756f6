"""Every network fault observably changes traffic on its link, and is gone after heal.

The test acts as the link's client: it connects to the proxy of `front->api` (what the
front service is configured with) and speaks HTTP to api through it.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from typing import Any

import pytest
from l2chaos.faults.base import Fault, Target, TargetKind
from l2chaos.params import Duration

from tests._support.faults import make_fault
from tests._support.stacks import connection_refused

pytestmark = pytest.mark.integration

LINK = "front->api"
SMALL = "/bytes?n=10"


def make(name: str, params: dict[str, Any], links: tuple[str, ...] = (LINK,)) -> Fault[Any]:
    kind = TargetKind.LINKS if name == "network.partition" else TargetKind.LINK
    return make_fault(
        name, Target(kind, links=links, text=", ".join(links)), params, Duration.of(s=1)
    )


@pytest.fixture
def via(stack: Any) -> str:
    return str(stack.link_endpoint(LINK).hostport)


@pytest.fixture(autouse=True)
def clean_links(stack: Any) -> Iterator[None]:
    stack.links.reset()
    yield
    stack.links.reset()


@pytest.fixture
def ctx(stack: Any, ts: Any) -> Any:
    return ts.fault_context(stack)


def rtt(ts: Any, hostport: str, path: str = SMALL, n: int = 3) -> float:
    times: list[float] = []
    for _ in range(n):
        status, _, _, elapsed = ts.http_get(hostport, path)
        assert status == 200
        times.append(elapsed)
    return statistics.median(times)


def faster_than(ts: Any, hostport: str, seconds: float, path: str = SMALL) -> bool:
    """Whether a request comes back in less than `seconds` (tried until one does, or
    30 s): a latency toxic of that size makes every one slower, so one fast answer
    shows there is none on the way, however busy the machine."""

    def once() -> bool:
        status, _, _, elapsed = ts.http_get(hostport, path)
        assert status == 200
        return bool(elapsed < seconds)

    return bool(ts.wait_until(once, timeout=30))


def healed(stack: Any, ts: Any, via: str, slowed_by: float = 0.1) -> None:
    """No toxic left, the link enabled, and nothing slows it by `slowed_by` any more."""
    assert stack.links.toxics(LINK) == []
    assert stack.links.is_enabled(LINK)
    assert faster_than(ts, via, slowed_by)


def test_latency_is_added_and_removed(stack: Any, ts: Any, via: str, ctx: Any) -> None:
    fault = make("network.latency", {"latency": "300ms"})
    details: dict[str, Any] = fault.inject(ctx)
    try:
        assert [t["stream"] for t in details["toxics"]] == ["downstream"]
        assert rtt(ts, via) >= 0.3
        # the direct address (control traffic) is untouched
        assert faster_than(ts, stack.direct_endpoint("api").hostport, 0.3)
    finally:
        fault.heal(ctx)
    healed(stack, ts, via, 0.3)


def test_stream_both_adds_one_toxic_per_direction(stack: Any, ts: Any, via: str, ctx: Any) -> None:
    fault = make("network.latency", {"latency": "100ms", "stream": "both"})
    fault.inject(ctx)
    try:
        toxics = stack.links.toxics(LINK)
        assert sorted(t.stream for t in toxics) == ["downstream", "upstream"]
        assert {t.attributes["latency"] for t in toxics} == {100}
        assert rtt(ts, via) >= 0.2  # once each way
    finally:
        fault.heal(ctx)
    healed(stack, ts, via, 0.2)


def test_bandwidth_limits_throughput(stack: Any, ts: Any, via: str, ctx: Any) -> None:
    size = 96 * 1024
    fault = make("network.bandwidth", {"rate": 48})
    fault.inject(ctx)
    try:
        _, body, _, slow = ts.http_get(via, f"/bytes?n={size}", timeout=15)
    finally:
        fault.heal(ctx)
    assert len(body) == size
    kb_s = size / 1024 / slow
    assert kb_s <= 70, f"{kb_s:.1f} KB/s through a 48 KB/s link"  # a busy machine is slower
    # healed: the same transfer comes back faster than 48 KB/s allows (2 s)
    assert faster_than(ts, via, size / 1024 / 48, f"/bytes?n={size}")
    healed(stack, ts, via)


def test_timeout_zero_is_a_black_hole(stack: Any, ts: Any, via: str, ctx: Any) -> None:
    fault = make("network.timeout", {"timeout": "0s"})
    details: dict[str, Any] = fault.inject(ctx)
    try:
        assert len(details["toxics"]) == 2  # both directions by default
        with pytest.raises(TimeoutError):
            ts.http_get(via, SMALL, timeout=1.0)
    finally:
        fault.heal(ctx)
    healed(stack, ts, via)


def test_timeout_closes_the_connection_after_it(stack: Any, ts: Any, via: str, ctx: Any) -> None:
    fault = make("network.timeout", {"timeout": "500ms"})
    fault.inject(ctx)
    try:
        status, body, _, elapsed = ts.http_get(via, SMALL, timeout=5.0)
    finally:
        fault.heal(ctx)
    assert (status, body) == (0, b"")  # closed without an answer (not a client timeout)
    assert elapsed >= 0.45
    healed(stack, ts, via)


def test_reset_peer_resets_connections(stack: Any, ts: Any, via: str, ctx: Any) -> None:
    fault = make("network.reset_peer", {"timeout": "0s"})
    fault.inject(ctx)
    try:
        with pytest.raises(ConnectionResetError):
            ts.http_get(via, SMALL)
    finally:
        fault.heal(ctx)
    healed(stack, ts, via)


def test_slicer_cuts_data_into_small_delayed_pieces(
    stack: Any, ts: Any, via: str, ctx: Any
) -> None:
    _, body, chunks, _ = ts.http_get(via, "/bytes?n=4000")
    assert len(body) == 4000
    assert len(chunks) <= 3
    fault = make("network.slicer", {"average_size": 100, "size_variation": 20, "delay": "5ms"})
    fault.inject(ctx)
    try:
        _, body, chunks, elapsed = ts.http_get(via, "/bytes?n=4000")
    finally:
        fault.heal(ctx)
    assert len(body) == 4000  # everything arrives, in pieces
    assert len(chunks) >= 10
    assert max(chunks) <= 1000
    assert elapsed >= 0.1  # ~40 slices, 5 ms apart
    healed(stack, ts, via)


def test_limit_data_cuts_the_connection(stack: Any, ts: Any, via: str, ctx: Any) -> None:
    fault = make("network.limit_data", {"bytes": 1000})
    fault.inject(ctx)
    try:
        _, body, chunks, _ = ts.http_get(via, "/bytes?n=10000")
    finally:
        fault.heal(ctx)
    assert sum(chunks) <= 1000
    assert len(body) < 10000
    _, body, _, _ = ts.http_get(via, "/bytes?n=10000")
    assert len(body) == 10000
    healed(stack, ts, via)


def test_slow_close_holds_the_close_back(stack: Any, ts: Any, via: str, ctx: Any) -> None:
    fault = make("network.slow_close", {"delay": "1s"})
    fault.inject(ctx)
    try:
        status, body, _, elapsed = ts.http_get(via, SMALL)
    finally:
        fault.heal(ctx)
    assert (status, body) == (200, b"x" * 10)  # the answer itself is intact
    assert elapsed >= 0.95  # but the close came only after the delay
    healed(stack, ts, via)


def test_down_refuses_connections(stack: Any, ts: Any, via: str, ctx: Any) -> None:
    fault = make("network.down", {})
    assert fault.resources() == {f"link:{LINK}"}
    fault.inject(ctx)
    try:
        assert not stack.links.is_enabled(LINK)
        with pytest.raises(ConnectionRefusedError):
            ts.http_get(via, SMALL)
        assert ts.http_get(stack.direct_endpoint("api").hostport, SMALL)[0] == 200  # control works
    finally:
        fault.heal(ctx)
    healed(stack, ts, via)


def test_toxicity_affects_only_some_connections(stack: Any, ts: Any, via: str, ctx: Any) -> None:
    fault = make("network.latency", {"latency": "150ms", "toxicity": 0.5})
    fault.inject(ctx)
    try:
        times = [ts.http_get(via, SMALL)[3] for _ in range(30)]
        # each connection is drawn with p=0.5: none slowed has probability 0.5**30; and
        # one comes back faster than the latency allows, so not every one is slowed
        assert any(t >= 0.15 for t in times), times
        assert faster_than(ts, via, 0.15)
    finally:
        fault.heal(ctx)
    healed(stack, ts, via, 0.15)


def _link_works(stack: Any, ts: Any, link: str) -> bool:
    hostport = stack.link_endpoint(link).hostport
    try:
        if link.endswith("->db"):
            return bool(ts.pg_ready(stack, hostport))
        return bool(ts.http_get(hostport, SMALL, timeout=2.0)[0] == 200)
    except OSError:
        return False


def _refused(stack: Any, link: str) -> bool:
    return connection_refused(stack.link_endpoint(link), timeout=2.0)


ALL = ("api->db", "front->api", "front->db")


def test_partition_of_a_service_cuts_exactly_its_links(stack: Any, ts: Any, ctx: Any) -> None:
    assert all(_link_works(stack, ts, lk) for lk in ALL)
    target = Target(TargetKind.SERVICE_OR_LINKS, services=("api",), text="api")
    fault = make_fault("network.partition", target, {}, Duration.of(s=1))
    details: dict[str, Any] = fault.inject(ctx)
    try:
        assert sorted(details["disabled"]) == ["api->db", "front->api"]
        assert _refused(stack, "api->db")
        assert _refused(stack, "front->api")
        assert _link_works(stack, ts, "front->db")
        # the service itself is up and reached directly
        assert ts.http_get(stack.direct_endpoint("api").hostport, SMALL)[0] == 200
    finally:
        fault.heal(ctx)
    assert all(_link_works(stack, ts, lk) for lk in ALL)


def test_partition_of_listed_links_cuts_only_those(stack: Any, ts: Any, ctx: Any) -> None:
    fault = make("network.partition", {}, links=("front->db", "api->db"))
    assert fault.resources() == {"link:front->db", "link:api->db"}
    fault.inject(ctx)
    try:
        assert _refused(stack, "front->db")
        assert _refused(stack, "api->db")
        assert _link_works(stack, ts, "front->api")
        # front still reaches api through its link; api cannot reach the db
        front = stack.direct_endpoint("front").hostport
        assert ts.http_get(front, "/via?path=/pid")[0] == 200
        assert ts.http_get(stack.direct_endpoint("api").hostport, "/db")[0] == 502
    finally:
        fault.heal(ctx)
    assert all(_link_works(stack, ts, lk) for lk in ALL)
    assert ts.http_get(stack.direct_endpoint("api").hostport, "/db")[:2] == (200, b"1")


def test_heal_after_a_failed_inject_is_safe(stack: Any, ts: Any, via: str, ctx: Any) -> None:
    fault = make("network.latency", {"latency": "100ms"})
    fault.heal(ctx)  # nothing was injected: removing absent toxics is fine
    healed(stack, ts, via)
