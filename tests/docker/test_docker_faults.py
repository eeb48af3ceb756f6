"""Every container fault takes effect and heals, through faults/process.py unchanged.

The same fault classes the local backend uses, on the docker backend's ServiceControl:
kill, stop/start, restart, pause/unpause, restart_race (fast and immediate) on the real
PostgreSQL container, crash_loop, and disconnect/reconnect from the run's network.
"""

from __future__ import annotations

from typing import Any

import pytest
from l2chaos.params import Duration

from tests._support.faults import POSTGRES_STOPS, service_fault

pytestmark = pytest.mark.docker

S = Duration.of(s=1)


def status(stack: Any, ds: Any, service: str, path: str = "/ready", timeout: float = 1.0) -> int:
    return int(ds.get(stack, service, path, timeout=timeout)[0])


def container_status(stack: Any, service: str) -> str:
    c = stack.platform.container(service)
    c.reload()
    return str(c.status)


def test_kill_with_a_window_starts_it_again_at_heal(stack: Any, ds: Any) -> None:
    ctx = ds.fault_context(stack)
    old_pid = stack.control.pid("api")
    old_boot = ds.boot(stack, "api")
    fault = service_fault("process.kill", "api", {}, S)
    d: dict[str, Any] = fault.inject(ctx)
    assert d["old_pid"] == old_pid
    assert d["running"] is False
    assert container_status(stack, "api") == "exited"
    assert stack.platform.container("api").attrs["State"]["ExitCode"] == 137  # SIGKILL
    assert status(stack, ds, "api") == 0
    h: dict[str, Any] = fault.heal(ctx)
    assert h["ready"] is True
    assert h["started"] is True
    assert h["pid"] == stack.control.pid("api") != old_pid
    assert ds.boot(stack, "api") != old_boot


def test_stop_is_graceful_and_heal_starts_it(stack: Any, ds: Any) -> None:
    ctx = ds.fault_context(stack)
    old_boot = ds.boot(stack, "api")
    fault = service_fault("process.stop", "api", {"stop_timeout": "5s"}, S)
    fault.inject(ctx)
    # SIGTERM was enough: no SIGKILL (137) after the timeout
    assert stack.platform.container("api").attrs["State"]["ExitCode"] != 137
    assert not stack.control.is_running("api")
    assert stack.control.pid("api") is None
    assert status(stack, ds, "front", "/via?path=/boot") == 502  # its client sees it gone
    assert fault.heal(ctx)["ready"] is True
    assert ds.boot(stack, "api") != old_boot
    assert status(stack, ds, "front", "/via?path=/boot") == 200


def test_restart_is_instant(stack: Any, ds: Any) -> None:
    ctx = ds.fault_context(stack)
    old_boot = ds.boot(stack, "api")
    fault = service_fault("process.restart", "api", {}, None)
    d: dict[str, Any] = fault.inject(ctx)
    assert d["ready"] is True
    assert d["new_pid"] != d["old_pid"]
    assert ds.boot(stack, "api") != old_boot
    assert fault.heal(ctx) == {}


def test_pause_freezes_the_container_until_heal(stack: Any, ds: Any) -> None:
    ctx = ds.fault_context(stack)
    pid = stack.control.pid("api")
    old_boot = ds.boot(stack, "api")
    fault = service_fault("process.pause", "api", {}, S)
    fault.inject(ctx)
    try:
        assert container_status(stack, "api") == "paused"
        assert status(stack, ds, "api") == 0  # nobody answers
        assert stack.control.is_running("api")  # frozen, not stopped
    finally:
        fault.heal(ctx)
    assert container_status(stack, "api") == "running"
    assert ds.wait_until(lambda: status(stack, ds, "api") == 200, timeout=10)
    assert stack.control.pid("api") == pid
    assert ds.boot(stack, "api") == old_boot  # the same process, thawed


def test_pause_freezes_postgres(stack: Any, ds: Any) -> None:
    ctx = ds.fault_context(stack)
    fault = service_fault("process.pause", "db", {}, S)
    fault.inject(ctx)
    try:
        assert not ds.db_ok(stack)
        assert status(stack, ds, "api", "/db", timeout=6.0) == 502  # its 3 s timeout
    finally:
        fault.heal(ctx)
    assert ds.wait_until(lambda: ds.db_ok(stack), timeout=10)


@pytest.mark.parametrize(("how", "log_line"), POSTGRES_STOPS)
def test_restart_race_on_postgres(stack: Any, ds: Any, how: str, log_line: str) -> None:
    ctx = ds.fault_context(stack)
    ds.psql(stack, "CREATE TABLE IF NOT EXISTS acked (id int primary key)")
    ds.psql(stack, f"INSERT INTO acked VALUES ({len(how)}) ON CONFLICT DO NOTHING")
    notes: list[dict[str, Any]] = []
    ctx = ds.fault_context(stack, notes)
    old = stack.control.pid("db")
    fault = service_fault("process.restart_race", "db", {"downtime": "1s", "how": how}, None)
    d: dict[str, Any] = fault.inject(ctx)
    assert d["old_pid"] == old
    assert [n["step"] for n in notes] == ["stopped"]
    assert not stack.control.is_running("db")
    assert not ds.db_ok(stack)
    code = stack.platform.container("db").attrs["State"]["ExitCode"]
    assert code == 0  # fast and immediate shutdowns both end the postmaster cleanly
    assert status(stack, ds, "api", "/db") == 502  # its client keeps trying and fails
    h: dict[str, Any] = fault.heal(ctx)
    assert h["ready"] is True
    assert h["pid"] != old
    assert ds.db_ok(stack)
    assert ds.psql(stack, f"SELECT count(*) FROM acked WHERE id = {len(how)}") == "1"
    assert log_line in stack.log_tail("db", 60)
    assert ds.get(stack, "api", "/db")[1].startswith("ok ")


def test_crash_loop_kills_count_times(stack: Any, ds: Any) -> None:
    notes: list[dict[str, Any]] = []
    ctx = ds.fault_context(stack, notes)
    fault = service_fault("process.crash_loop", "api", {"count": 3, "interval": "500ms"}, None)
    fault.inject(ctx)
    # the loop's own notes say when its third kill is done (each kill + start of a
    # container takes its time on a busy engine: no fixed sleep)
    assert ds.wait_until(lambda: sum(n.get("step") == "killed" for n in notes) >= 3, 60)
    h: dict[str, Any] = fault.heal(ctx)
    kills = h["kills"]
    assert [k["kill"] for k in kills] == [1, 2, 3]
    pids = [kills[0]["old_pid"]] + [k["new_pid"] for k in kills]
    assert len(set(pids)) == 4
    assert h["ready"] is True
    assert status(stack, ds, "api") == 200


def test_disconnect_cuts_the_container_off_the_network(stack: Any, ds: Any) -> None:
    ctx = ds.fault_context(stack)
    net = f"l2chaos-{stack.run_id}"
    fault = service_fault("process.disconnect", "api", {}, S)
    fault.inject(ctx)
    try:
        c = stack.platform.container("api")
        c.reload()
        assert net not in c.attrs["NetworkSettings"]["Networks"]
        assert stack.control.is_running("api")
        assert status(stack, ds, "front", "/via?path=/boot") == 502  # peers cannot reach it
        assert status(stack, ds, "api") == 0  # nor its published port
        assert status(stack, ds, "front", "/db") == 200  # the rest of the stack is fine
    finally:
        fault.heal(ctx)
    c.reload()
    assert net in c.attrs["NetworkSettings"]["Networks"]
    assert ds.wait_until(lambda: status(stack, ds, "front", "/via?path=/boot") == 200)
    assert ds.wait_until(lambda: status(stack, ds, "api", "/db") == 200)  # and it reaches db


def test_heal_after_a_partial_inject_brings_it_back(stack: Any, ds: Any) -> None:
    # paused and then killed by hand: the kill fault's heal resumes nothing and starts it
    ctx = ds.fault_context(stack)
    stack.control.pause("api")
    stack.control.kill("api")  # a paused container is thawed first, then killed
    assert not stack.control.is_running("api")
    h: dict[str, Any] = service_fault("process.kill", "api", {}, S).heal(ctx)
    assert h["ready"] is True
    assert status(stack, ds, "api") == 200
