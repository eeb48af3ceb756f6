"""The local backend with real Postgres and real Toxiproxy: bring-up, routing through
proxies, control, failures, teardown, two runs at once, and gc after SIGKILL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from l2chaos.backends import gc_all
from l2chaos.backends.local import LocalBackend
from l2chaos.backends.postgres import PgInstall, can_traverse, find_pg_bin
from l2chaos.backends.procs import MarkerStore, pids_of_run, read_environ
from l2chaos.backends.toxiproxy import find_toxiproxy_server
from l2chaos.errors import StackError

from tests._support.modules import ROOT

pytestmark = pytest.mark.integration


def refused(hostport: str) -> bool:
    host, port = hostport.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1.0).close()
    except ConnectionRefusedError:
        return True
    return False


def test_clients_are_given_the_proxy_never_the_server(stack: Any, ts: Any) -> None:
    env = read_environ(stack.control.pid("front"))
    assert env is not None
    assert env["TINY_UPSTREAM"] == stack.link_endpoint("front->api").hostport
    assert env["TINY_UPSTREAM"] != stack.direct_endpoint("api").hostport
    assert env["TINY_DB"] == f"postgresql://tiny@{stack.link_endpoint('front->db').hostport}/tiny"
    assert env["L2CHAOS_RUN_ID"] == stack.run_id
    assert env["L2CHAOS_ADMIN_TOKEN"] == stack.admin_token
    assert env["L2CHAOS_SEED"] == "1"
    # and the routes work end to end: front -> proxy -> api -> proxy -> postgres
    front = stack.direct_endpoint("front").hostport
    assert ts.http_get(front, "/via?path=/db")[:2] == (200, b"1")
    proxies = stack.links.client.proxies()
    assert {p.upstream for p in proxies.values()} == {
        stack.direct_endpoint(s).hostport for s in ("db", "api")
    }


def test_ports_are_outside_the_ephemeral_range(stack: Any) -> None:
    lo, hi = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    ports = [stack.direct_endpoint(s).port for s in stack.services]
    ports += [stack.link_endpoint(lk).port for lk in stack.links.links()]
    assert len(set(ports)) == len(ports)
    assert all(not lo <= p <= hi for p in ports)


def test_versions_describe_and_logs(stack: Any) -> None:
    v = stack.versions()
    assert v["toxiproxy"] == "2.12.0"
    assert v["postgres"].startswith("16.")
    d = stack.describe()
    assert d["links"] == ["api->db", "front->api", "front->db"]
    assert d["services"]["api"] == stack.direct_url("api")
    assert stack.admin_token not in json.dumps(d)
    assert "listening on" in stack.log_tail("front")
    assert stack.log_path("db").is_file()
    assert "ready to accept connections" in stack.log_tail("db", 200)


def test_database_and_role_exist(stack: Any, ts: Any) -> None:
    assert ts.psql(stack, "SELECT current_user || '@' || current_database()") == "tiny@tiny"
    assert ts.psql(stack, "SHOW fsync") == "on"


def test_marker_describes_the_live_run(stack: Any) -> None:
    marker = dict(MarkerStore().all_by_run())[stack.run_id]
    assert marker.owner_pid == os.getpid()
    assert marker.owner_alive()
    assert marker.processes["api"] == stack.control.pid("api")
    assert marker.processes["db"] == stack.control.pid("db")
    assert stack.direct_endpoint("db").port in marker.ports
    assert marker.temp_dirs == [str(stack.platform.tempdir)]


def test_gc_leaves_a_live_run_alone(stack: Any, ts: Any) -> None:
    lines = gc_all()
    assert not [ln for ln in lines if stack.run_id in ln]
    assert ts.http_get(stack.direct_endpoint("api").hostport, "/pid")[0] == 200


def test_control_start_is_a_noop_when_running_and_restart_changes_pid(stack: Any) -> None:
    pid = stack.control.pid("front")
    stack.control.start("front")
    assert stack.control.pid("front") == pid
    stack.control.restart("front", timeout_s=5)
    stack.control.wait_ready("front", 10)
    assert stack.control.pid("front") not in (None, pid)
    env = read_environ(stack.control.pid("front"))
    assert env is not None
    assert env["TINY_UPSTREAM"] == stack.link_endpoint("front->api").hostport  # same config


def test_wait_ready_raises_when_the_service_is_down(stack: Any) -> None:
    stack.control.stop("front", timeout_s=5)
    try:
        with pytest.raises(StackError, match="front"):
            stack.control.wait_ready("front", 1)
    finally:
        stack.control.start("front")
        stack.control.wait_ready("front", 10)


def test_stop_of_postgres_is_a_fast_shutdown(stack: Any) -> None:
    size = stack.log_path("db").stat().st_size
    stack.control.stop("db", timeout_s=10)
    try:
        with open(stack.log_path("db"), "rb") as f:
            f.seek(size)
            text = f.read().decode(errors="replace")
        assert "fast shutdown request" in text
    finally:
        stack.control.start("db")
        stack.control.wait_ready("db", 30)


def _state(stack: Any) -> tuple[str, list[int], Path, str]:
    ports = stack.reserved_ports()
    return stack.run_id, ports, stack.platform.tempdir, stack.links.client.api


def test_teardown_leaves_nothing_after_success(tmp_path: Path, ts: Any) -> None:
    with ts.up_stack(tmp_path) as st:
        run_id, ports, tempdir, api = _state(st)
        assert ts.leftovers(run_id, ports, tempdir)  # it really was up
        marker = MarkerStore().path(run_id)
        assert marker.is_file()
    assert ts.leftovers(run_id, ports, tempdir) == []
    assert refused(api)  # Toxiproxy is gone, and every proxy with it
    assert not marker.exists()
    assert (tmp_path / "run" / "logs" / "api.log").is_file()  # logs stay
    assert st.down() == []  # idempotent


def test_teardown_after_an_exception_inside_with(tmp_path: Path, ts: Any) -> None:
    state: list[Any] = []

    def run() -> None:
        with ts.up_stack(tmp_path) as st:
            state.extend(_state(st))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run()
    run_id, ports, tempdir, api = state
    assert ts.leftovers(run_id, ports, tempdir) == []
    assert refused(api)


def test_a_service_that_exits_fails_the_start_and_nothing_stays(tmp_path: Path, ts: Any) -> None:
    run = ts.stack_run(ts.write_stack(tmp_path / "def", mode="crash"))
    run_id = ts.new_run_id("crash")
    with pytest.raises(StackError) as err:
        LocalBackend().up(run, run_id=run_id, run_dir=tmp_path / "run", env={})
    text = str(err.value)
    assert text.startswith("api: exited with code 3 before it was ready")
    assert "crashing on purpose" in text  # the tail of its log
    assert err.value.service == "api"
    assert pids_of_run(run_id) == []
    assert not MarkerStore().path(run_id).exists()
    assert not list(Path("/tmp").glob(f"l2chaos-run-{run_id}-*"))


def test_a_service_that_never_gets_ready_times_out(tmp_path: Path, ts: Any) -> None:
    path = ts.write_stack(tmp_path / "def", mode="unready", ready_timeout="1s")
    run_id = ts.new_run_id("unready")
    with pytest.raises(StackError) as err:
        LocalBackend().up(ts.stack_run(path), run_id=run_id, run_dir=tmp_path / "run", env={})
    assert str(err.value).startswith("api: not ready after 1s (GET http://127.0.0.1:")
    assert "503: not ready on purpose" in str(err.value)
    assert pids_of_run(run_id) == []


def test_missing_toxiproxy_is_a_clear_error(
    tmp_path: Path, ts: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("L2CHAOS_TOXIPROXY", str(tmp_path / "nope"))
    run_id = ts.new_run_id("notp")
    with pytest.raises(StackError, match=r"bash \.ci/setup"):
        LocalBackend().up(
            ts.stack_run(ts.write_stack(tmp_path / "def")),
            run_id=run_id,
            run_dir=tmp_path / "run",
            env={},
        )
    assert pids_of_run(run_id) == []


def test_two_runs_at_once_never_collide(tmp_path: Path, ts: Any) -> None:
    stacks: dict[int, Any] = {}
    errors: list[BaseException] = []
    backend = LocalBackend(stop_timeout_s=5)

    def up(i: int) -> None:
        try:
            run = ts.stack_run(ts.write_stack(tmp_path / f"def{i}"))
            stacks[i] = backend.up(
                run, run_id=ts.new_run_id(f"pair{i}"), run_dir=tmp_path / f"run{i}", env={}
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=up, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        assert not errors
        ports = [set(s.reserved_ports()) for s in stacks.values()]
        assert not ports[0] & ports[1]
        for s in stacks.values():
            front = s.direct_endpoint("front").hostport
            assert ts.http_get(front, "/via?path=/db")[:2] == (200, b"1")
    finally:
        for s in stacks.values():
            backend.down(s)


CHILD = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.integration.backends import tinystack
from l2chaos.backends.local import LocalBackend
from l2chaos.backends.postgres import PgInstall, can_traverse, find_pg_bin
run = tinystack.stack_run(tinystack.write_stack(Path({folder!r}) / "def"))
st = LocalBackend().up(run, run_id={run_id!r}, run_dir=Path({folder!r}) / "run", env={{}})
print(json.dumps({{"ports": st.reserved_ports(), "tempdir": str(st.platform.tempdir),
                  "api": st.links.client.api}}), flush=True)
time.sleep(120)
"""


def test_gc_cleans_a_run_whose_owner_was_killed(tmp_path: Path, ts: Any) -> None:
    run_id = ts.new_run_id("orphan")
    code = CHILD.format(root=str(ROOT), folder=str(tmp_path), run_id=run_id)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        info = json.loads(child.stdout.readline())
        child.send_signal(signal.SIGKILL)  # no teardown, no atexit
        child.wait(10)
        tempdir = Path(info["tempdir"])
        left = ts.leftovers(run_id, info["ports"], tempdir)
        assert any(x.startswith("pid") for x in left)  # orphans are still running
        assert httpx.get(f"http://{info['api']}/proxies", trust_env=False).status_code == 200

        lines = gc_all()
        mine = [ln for ln in lines if run_id in ln]
        assert any(ln.startswith("killed pid") and "(postgres)" in ln for ln in mine)
        assert any(ln.startswith("killed pid") and "(toxiproxy-serv" in ln for ln in mine)
        assert any(ln.startswith("removed temp dir") for ln in mine)
        assert any(ln.startswith("removed marker") for ln in mine)
        assert ts.wait_until(lambda: ts.leftovers(run_id, info["ports"], tempdir) == [], 10)
        assert refused(info["api"])
        assert not MarkerStore().path(run_id).exists()
        assert not [ln for ln in gc_all() if run_id in ln]  # nothing left to do
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
        gc_all()


@pytest.mark.skipif(os.geteuid() != 0, reason="only as root does Postgres run as another user")
def test_postgres_binaries_in_a_private_folder_are_copied_where_its_user_reads_them(
    tmp_path: Path, ts: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    install = find_pg_bin().parent  # site-packages/pgserver/pginstall
    site = install.parent.parent
    private = Path(tempfile.mkdtemp(prefix="l2chaos-private-"))  # 0700, like a CI checkout
    try:
        for part in ("bin", "lib", "share"):  # the wheel's layout, as in a venv in a checkout
            shutil.copytree(
                install / part, private / "pgserver" / "pginstall" / part, symlinks=True
            )
        shutil.copytree(site / "pgserver.libs", private / "pgserver.libs")
        private_bin = private / "pgserver" / "pginstall" / "bin"
        monkeypatch.setenv("L2CHAOS_PG_BIN", str(private_bin))
        monkeypatch.setenv("L2CHAOS_TOXIPROXY", str(find_toxiproxy_server()))
        monkeypatch.setenv("L2CHAOS_CACHE", str(tmp_path / "cache"))  # initdb from the copy too
        pg = PgInstall.locate()
        assert pg.user is not None
        assert not can_traverse(private_bin, pg.user.uid, [pg.user.gid])
        assert pg.bin.parts[:3] == ("/", "tmp", "l2chaos-pg-0")
        assert pg.bin.parts[-3:] == ("pgserver", "pginstall", "bin")
        assert can_traverse(pg.bin, pg.user.uid, [pg.user.gid])
        with ts.up_stack(tmp_path) as st:
            assert st.platform._pg is not None
            assert st.platform._pg.bin == pg.bin
            assert ts.psql(st, "SELECT 1") == "1"
        assert list((tmp_path / "cache" / "pg").glob("template-*/PG_VERSION"))
    finally:
        shutil.rmtree(private)


def test_an_interrupt_during_teardown_is_held_until_it_is_complete(
    tmp_path: Path, ts: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = ts.stack_run(ts.write_stack(tmp_path / "def"))
    st = LocalBackend(stop_timeout_s=5).up(
        run, run_id=ts.new_run_id("intr"), run_dir=tmp_path / "run", env={}
    )
    run_id, ports, tempdir, api = _state(st)
    front = st.platform._procs["front"]
    real_stop = front.stop

    def stop_then_ctrl_c(*args: Any, **kwargs: Any) -> Any:
        real_stop(*args, **kwargs)
        raise KeyboardInterrupt  # Ctrl-C while the first service is being stopped

    monkeypatch.setattr(front, "stop", stop_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        st.down()
    assert ts.leftovers(run_id, ports, tempdir) == []  # the rest was torn down first
    assert refused(api)
    assert st.down() == []
    with pytest.raises(StackError, match="being torn down"):
        st.control.start("api")  # a late fault cannot bring a service back
