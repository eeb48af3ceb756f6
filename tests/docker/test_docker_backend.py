"""The docker backend on its own tiny stack: containers, network, proxies, ports, logs,
failures and cleanup, on the real engine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from l2chaos.backends.base import Toxic
from l2chaos.backends.docker import (
    LABEL_OWNER,
    LABEL_RUN,
    DockerBackend,
    DockerPlatform,
    run_objects,
)
from l2chaos.errors import StackError

pytestmark = pytest.mark.docker


def test_every_service_runs_in_its_own_labelled_container_on_the_run_network(
    stack: Any, engine: Any
) -> None:
    client = engine.client
    objs = run_objects(client, stack.run_id)
    assert sorted(objs["containers"]) == sorted(
        f"l2chaos-{stack.run_id}-{s}" for s in ("db", "api", "front", "toxiproxy")
    )
    assert objs["networks"] == [f"l2chaos-{stack.run_id}"]
    assert len(objs["volumes"]) == 2  # db data and api's {data_dir}
    for name in objs["containers"]:
        c = client.containers.get(name)
        assert c.labels[LABEL_RUN] == stack.run_id
        assert c.labels[LABEL_OWNER].split("|")[1] == str(os.getpid())
        assert list(c.attrs["NetworkSettings"]["Networks"]) == [f"l2chaos-{stack.run_id}"]


def test_ports_are_published_on_loopback_only(stack: Any, engine: Any) -> None:
    for name in ("db", "api", "front", "toxiproxy"):
        c = engine.client.containers.get(f"l2chaos-{stack.run_id}-{name}")
        bindings = [b for bs in c.attrs["HostConfig"]["PortBindings"].values() for b in bs]
        assert bindings
        assert {b["HostIp"] for b in bindings} == {"127.0.0.1"}
    assert stack.direct_endpoint("api").host == "127.0.0.1"


def test_clients_reach_servers_only_through_their_links(stack: Any, ds: Any) -> None:
    # front -> api through Toxiproxy: front's environment names the proxy, not api
    env = stack.platform.container("front").attrs["Config"]["Env"]
    assert "TINY_UPSTREAM=toxiproxy:20001" in env
    assert ds.get(stack, "front", "/via?path=/boot") == (200, ds.boot(stack, "api"))
    stack.links.set_enabled("front->api", False)
    try:
        status, body = ds.get(stack, "front", "/via?path=/boot")
        assert status == 502, body
        assert ds.get(stack, "front", "/db")[0] == 200  # front->db is another proxy
    finally:
        stack.links.set_enabled("front->api", True)
    assert ds.get(stack, "front", "/via?path=/boot")[0] == 200


def test_a_toxic_on_a_link_slows_only_that_link(stack: Any, ds: Any) -> None:
    def timed(path: str) -> float:
        t0 = time.monotonic()
        assert ds.get(stack, "front", path)[0] == 200
        return time.monotonic() - t0

    def faster(path: str) -> bool:  # one answer faster than the toxic allows (polled)
        return bool(ds.wait_until(lambda: timed(path) < 0.4, 30))

    stack.links.add_toxic("front->api", Toxic("slow", "latency", attributes={"latency": 400}))
    try:
        assert timed("/via?path=/boot") >= 0.4
        assert faster("/db")
    finally:
        stack.links.remove_toxic("front->api", "slow")
    assert faster("/via?path=/boot")


def test_postgres_follows_the_official_images_contract(stack: Any, ds: Any) -> None:
    # POSTGRES_USER / POSTGRES_DB made on first start, trust auth for every host
    assert ds.get(stack, "api", "/db")[1].startswith("ok ")
    assert ds.psql(stack, "SELECT current_user || ' ' || current_database()") == "tiny tiny"
    assert "postgres" in stack.versions()
    c = stack.platform.container("db")
    assert c.attrs["Config"]["StopSignal"] == "SIGINT"  # docker stop = fast shutdown


def test_template_values_from_the_host_and_inside_containers(stack: Any) -> None:
    host = stack.template_values("api")
    ep = stack.direct_endpoint("db")
    assert host["direct_dsn:db"] == f"postgresql://tiny@127.0.0.1:{ep.port}/tiny"
    assert host["port"] == str(stack.direct_endpoint("api").port)
    inside = stack.service_values("api")
    assert inside["link:api->db"] == "toxiproxy:20000"
    assert inside["port"] == "8080"
    assert inside["direct_dsn:db"] == "postgresql://tiny@db:5432/tiny"


def test_data_dir_is_kept_across_a_restart(stack: Any, ds: Any) -> None:
    first = int(ds.get(stack, "api", "/data")[1])
    stack.control.restart("api", 5.0)
    stack.control.wait_ready("api", 30)
    assert int(ds.get(stack, "api", "/data")[1]) == first + 1


def test_a_link_is_reachable_from_the_host_like_on_the_local_backend(stack: Any, ds: Any) -> None:
    ep = stack.link_endpoint("front->api")
    assert ds.http_get(f"http://{ep.hostport}/boot")[0] == 200


def test_down_saves_logs_and_removes_everything(engine: Any, ds: Any, tmp_path: Path) -> None:
    with ds.up_stack(tmp_path) as st:
        run_id = st.run_id
        assert ds.get(st, "front", "/ready")[0] == 200
    assert run_objects(engine.client, run_id) == {"containers": [], "networks": [], "volumes": []}
    logs = tmp_path / "run" / "logs"
    assert "listening on 8080" in (logs / "api.log").read_text()
    assert "database system is ready to accept connections" in (logs / "db.log").read_text()
    assert (logs / "toxiproxy.log").read_text().strip()
    assert st.down() == []  # idempotent


def test_a_crashing_service_fails_up_with_its_exit_code_and_log(
    engine: Any, ds: Any, tmp_path: Path
) -> None:
    run = ds.stack_run(ds.write_stack(tmp_path / "def", api_mode="crash"))
    run_id = ds.new_run_id()
    with pytest.raises(StackError) as err:
        DockerBackend().up(run, run_id=run_id, run_dir=tmp_path / "run", env={})
    text = str(err.value)
    assert text.startswith("api: exited with code 3 before it was ready")
    assert "api: crashing on purpose" in text
    assert run_objects(engine.client, run_id) == {"containers": [], "networks": [], "volumes": []}
    assert "crashing on purpose" in (tmp_path / "run" / "logs" / "api.log").read_text()


def test_a_service_never_ready_times_out_with_the_last_answer(
    engine: Any, ds: Any, tmp_path: Path
) -> None:
    path = ds.write_stack(tmp_path / "def", ready_timeout="2s")
    text = path.read_text().replace(
        "    ready: /ready\n    ready_timeout: 2s", "    ready: /nope\n    ready_timeout: 2s"
    )
    path.write_text(text)
    run_id = ds.new_run_id()
    with pytest.raises(StackError) as err:
        DockerBackend().up(ds.stack_run(path), run_id=run_id, run_dir=tmp_path / "run", env={})
    assert "api: not ready after 2s (GET http://127.0.0.1:" in str(err.value)
    assert "answered 404: no such path" in str(err.value)
    assert run_objects(engine.client, run_id) == {"containers": [], "networks": [], "volumes": []}


def test_a_service_with_only_a_command_is_refused_with_the_field(
    engine: Any, ds: Any, tmp_path: Path
) -> None:
    from l2chaos.errors import StackSpecError

    path = ds.write_stack(tmp_path / "def")
    path.write_text(path.read_text().replace("    image: l2chaos-test/tiny\n", "", 1))
    with pytest.raises(StackSpecError) as err:
        DockerBackend().up(
            ds.stack_run(path), run_id=ds.new_run_id(), run_dir=tmp_path / "run", env={}
        )
    assert "services.api" in str(err.value)
    assert "the docker backend runs services from images" in str(err.value)


def test_gc_removes_what_a_killed_run_left_and_nothing_else(
    engine: Any, stack: Any, ds: Any, tmp_path: Path
) -> None:
    script = tmp_path / "bring_up.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys, time
            from pathlib import Path
            sys.path.insert(0, {str(ds.HERE.parents[1])!r})
            from tests.docker import dockerstack as ds
            from l2chaos.backends.docker import DockerBackend
            st = DockerBackend().up(ds.stack_run(), run_id=sys.argv[1], run_dir=Path(sys.argv[2]), env={{}})
            print("UP", flush=True)
            time.sleep(600)
            """
        )
    )
    run_id = ds.new_run_id("killed")
    proc = subprocess.Popen(
        [sys.executable, str(script), run_id, str(tmp_path / "run")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "UP"
        proc.send_signal(signal.SIGKILL)  # no teardown at all
        proc.wait(10)
        left = run_objects(engine.client, run_id)
        assert len(left["containers"]) == 4
        removed = DockerPlatform.gc()
        assert run_objects(engine.client, run_id) == {
            "containers": [],
            "networks": [],
            "volumes": [],
        }
        assert sum(run_id in line for line in removed) == 4 + 1 + 2
        # the live run of this module is not touched
        assert len(run_objects(engine.client, stack.run_id)["containers"]) == 4
        assert ds.get(stack, "api", "/ready")[0] == 200
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()
        DockerPlatform.gc()
