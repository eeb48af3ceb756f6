"""Every process fault observably stops or restarts the process, and heal brings it back.

api is a Python HTTP service; db is the real PostgreSQL from pgserver's binaries.
"""

from __future__ import annotations

from typing import Any

import pytest
from l2chaos.params import Duration

from tests._support.faults import POSTGRES_STOPS, service_fault
from tests._support.stacks import connection_refused

pytestmark = pytest.mark.integration

S = Duration.of(s=1)


def api_pid(stack: Any, ts: Any) -> int:
    status, body, _, _ = ts.http_get(stack.direct_endpoint("api").hostport, "/pid")
    assert status == 200
    return int(body)


def refused(stack: Any, service: str) -> bool:
    return connection_refused(stack.direct_endpoint(service), timeout=1.0)


def db_ok(stack: Any, ts: Any) -> bool:
    return bool(ts.pg_ready(stack, stack.direct_endpoint("db").hostport))


def test_kill_with_a_window_starts_it_again_at_heal(stack: Any, ts: Any) -> None:
    ctx = ts.fault_context(stack)
    old = api_pid(stack, ts)
    fault = service_fault("process.kill", "api", {}, S)
    assert fault.resources() == {"service:api"}
    d: dict[str, Any] = fault.inject(ctx)
    assert d["old_pid"] == old
    assert not stack.control.is_running("api")
    assert refused(stack, "api")
    h: dict[str, Any] = fault.heal(ctx)
    assert h["ready"] is True
    assert h["started"] is True
    new = api_pid(stack, ts)
    assert new != old
    assert h["pid"] == new


def test_stop_then_heal(stack: Any, ts: Any) -> None:
    ctx = ts.fault_context(stack)
    old = api_pid(stack, ts)
    fault = service_fault("process.stop", "api", {"stop_timeout": "5s"}, S)
    fault.inject(ctx)
    assert not stack.control.is_running("api")
    assert refused(stack, "api")
    assert fault.heal(ctx)["ready"] is True
    assert api_pid(stack, ts) != old


def test_restart_is_instant(stack: Any, ts: Any) -> None:
    ctx = ts.fault_context(stack)
    old = api_pid(stack, ts)
    fault = service_fault("process.restart", "api", {}, None)
    d: dict[str, Any] = fault.inject(ctx)
    assert d["ready"] is True
    assert d["old_pid"] == old
    assert d["new_pid"] == api_pid(stack, ts) != old
    assert fault.heal(ctx) == {}  # running: nothing to do


def test_pause_freezes_the_group_until_heal(stack: Any, ts: Any) -> None:
    ctx = ts.fault_context(stack)
    pid = api_pid(stack, ts)
    fault = service_fault("process.pause", "api", {}, S)
    fault.inject(ctx)
    try:
        assert ts.proc_state(pid) == "T"
        with pytest.raises(TimeoutError):  # the kernel accepts, nobody answers
            ts.http_get(stack.direct_endpoint("api").hostport, "/pid", timeout=0.5)
    finally:
        fault.heal(ctx)
    assert ts.proc_state(pid) in ("S", "R")
    assert api_pid(stack, ts) == pid  # the same process, thawed


def test_pause_freezes_postgres_and_its_backends(stack: Any, ts: Any) -> None:
    ctx = ts.fault_context(stack)
    pid = stack.control.pid("db")
    fault = service_fault("process.pause", "db", {}, S)
    fault.inject(ctx)
    try:
        assert ts.proc_state(pid) == "T"
        assert not db_ok(stack, ts)
    finally:
        fault.heal(ctx)
    assert ts.wait_until(lambda: db_ok(stack, ts), timeout=10)
    assert stack.control.pid("db") == pid


@pytest.mark.parametrize(("how", "log_line"), POSTGRES_STOPS)
def test_restart_race_on_postgres(stack: Any, ts: Any, how: str, log_line: str) -> None:
    ctx = ts.fault_context(stack)
    ts.psql(stack, "CREATE TABLE IF NOT EXISTS acked (id int primary key)")
    ts.psql(stack, f"INSERT INTO acked VALUES ({len(how)}) ON CONFLICT DO NOTHING")
    old = stack.control.pid("db")
    fault = service_fault("process.restart_race", "db", {"downtime": "1s", "how": how}, None)
    assert fault.duration == S  # the window is the downtime
    log_size = stack.log_path("db").stat().st_size
    d: dict[str, Any] = fault.inject(ctx)
    assert d["old_pid"] == old
    assert d["how"] == how
    assert not stack.control.is_running("db")
    assert not db_ok(stack, ts)
    # its clients keep writing through the link and fail meanwhile
    status, _, _, _ = ts.http_get(stack.direct_endpoint("api").hostport, "/db")
    assert status == 502
    h: dict[str, Any] = fault.heal(ctx)
    assert h["ready"] is True
    assert h["pid"] != old
    assert db_ok(stack, ts)
    # acknowledged data survived; the restart took the path it was asked to
    assert ts.psql(stack, f"SELECT count(*) FROM acked WHERE id = {len(how)}") == "1"
    with open(stack.log_path("db"), "rb") as f:
        f.seek(log_size)
        after = f.read().decode(errors="replace")
    assert log_line in after
    assert ts.http_get(stack.direct_endpoint("api").hostport, "/db")[:2] == (200, b"1")


def test_crash_loop_kills_count_times(stack: Any, ts: Any) -> None:
    notes: list[dict[str, Any]] = []
    ctx = ts.fault_context(stack, notes)
    first = api_pid(stack, ts)
    fault = service_fault("process.crash_loop", "api", {"count": 3, "interval": "400ms"}, None)
    assert fault.duration == Duration.of(ms=1200)
    fault.inject(ctx)
    # the loop's own notes say when its third kill is done (no fixed sleep)
    assert ts.wait_until(lambda: sum(n.get("step") == "killed" for n in notes) >= 3, 60)
    h: dict[str, Any] = fault.heal(ctx)
    kills = h["kills"]
    assert [k["kill"] for k in kills] == [1, 2, 3]
    pids = [first] + [k["new_pid"] for k in kills]
    assert len(set(pids)) == 4  # every kill produced a new process
    assert [k["old_pid"] for k in kills] == pids[:-1]
    assert [n["step"] for n in notes] == ["killed"] * 3
    assert h["ready"] is True
    assert api_pid(stack, ts) == pids[-1]


def test_disconnect_cuts_every_link_of_the_service(stack: Any, ts: Any) -> None:
    ctx = ts.fault_context(stack)
    fault = service_fault("process.disconnect", "api", {}, S)
    assert fault.resources() == {"service:api", "link:api->db", "link:front->api"}
    fault.inject(ctx)
    try:
        assert not stack.links.is_enabled("api->db")
        assert not stack.links.is_enabled("front->api")
        assert stack.links.is_enabled("front->db")
        front = stack.direct_endpoint("front").hostport
        assert ts.http_get(front, "/via?path=/pid")[0] == 502  # front cannot reach api
        assert ts.http_get(front, "/db")[:2] == (200, b"1")  # front->db is untouched
        assert api_pid(stack, ts) > 0  # the harness still reaches it directly
    finally:
        fault.heal(ctx)
    assert all(stack.links.is_enabled(lk) for lk in ("api->db", "front->api", "front->db"))
    assert ts.http_get(stack.direct_endpoint("front").hostport, "/via?path=/pid")[0] == 200


def test_kill_postgres_without_window_recovers(stack: Any, ts: Any) -> None:
    ctx = ts.fault_context(stack)
    old = stack.control.pid("db")
    fault = service_fault("process.kill", "db", {}, None)
    fault.inject(ctx)
    assert not db_ok(stack, ts)
    h = fault.heal(ctx)  # the timeline heals an OPTIONAL fault without `for` at once
    assert h["ready"] is True
    assert stack.control.pid("db") != old
    assert db_ok(stack, ts)


def test_heals_are_safe_when_nothing_was_injected(stack: Any, ts: Any) -> None:
    ctx = ts.fault_context(stack)
    pid = api_pid(stack, ts)
    healed = (
        ("process.kill", S),
        ("process.stop", S),
        ("process.pause", S),
        ("process.restart", None),
    )
    for name, window in healed:
        service_fault(name, "api", {}, window).heal(ctx)
    assert api_pid(stack, ts) == pid
