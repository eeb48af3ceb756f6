"""The orchestrator on a platform without processes (memplatform.py): dependency order,
readiness strategies, restarts, proxies while a service is down, and teardown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from l2chaos.backends.orchestrator import OrchestratedStack, StackOrchestrator
from l2chaos.backends.procs import MarkerStore
from l2chaos.errors import StackError
from l2chaos.stackspec import StackRun, load_stack

from tests.unit.backends.memplatform import MemoryPlatform

STACK = """
name: mem
services:
  db:    {command: [run-db], port: 1, ready: {tcp: true}}
  chain: {command: [run-chain], port: 2, depends_on: [db],
          ready: {jsonrpc: eth_syncing, result: false, advances: eth_blockNumber, timeout: 5s}}
  api:   {command: [run-api, "--port", "{port}", "--db", "{link:api->db}"], port: 3,
          ready: /ready, depends_on: [db]}
  front: {command: [run-front], port: 4, ready: {http: /ready}, depends_on: [api, chain]}
  side:  {command: [run-side]}
links: ["api -> db", "front -> api", "clients -> front"]
"""


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("L2CHAOS_CACHE", str(tmp_path / "cache"))


def stack_run(tmp_path: Path, text: str = STACK) -> StackRun:
    (tmp_path / "stack.yaml").write_text(text)
    return StackRun(load_stack(tmp_path / "stack.yaml"), None, {}, {}, seed=7)


def up(tmp_path: Path, text: str = STACK, **knobs: Any) -> OrchestratedStack[Any]:
    orch = StackOrchestrator(MemoryPlatform, stop_timeout_s=1, say=lambda _t: None, **knobs)
    return orch.up(stack_run(tmp_path, text), run_id="mem-1", run_dir=tmp_path / "run", env={})


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[OrchestratedStack[Any]]:
    st = up(tmp_path, ready_after={"api": 3})
    yield st
    st.down()


def test_services_start_after_their_dependencies_are_ready(stack: Any) -> None:
    started = [u for what, u in stack.platform.events if what == "start"]
    assert started[0] == "toxiproxy"
    pos = {u: started.index(u) for u in stack.services}
    for name, spec in stack.spec.services.items():
        assert all(pos[d] < pos[name] for d in spec.depends_on)
    assert stack.platform.units["api"].requests > 3  # waited for /ready to answer 200


def test_commands_are_rendered_from_the_inside_view(stack: Any) -> None:
    argv, env = stack.platform.created["api"]
    assert argv == ["run-api", "--port", str(stack.direct_endpoint("api").port),
                    "--db", stack.link_endpoint("api->db").hostport]  # fmt: skip
    assert env["L2CHAOS_RUN_ID"] == "mem-1"
    assert env["L2CHAOS_SEED"] == "7"


def test_the_jsonrpc_check_waits_for_the_head_to_advance(stack: Any) -> None:
    assert stack.platform.units["chain"].block >= 2  # two calls at least, hex quantities


def test_clients_reach_a_service_through_its_client_link(stack: Any) -> None:
    assert stack.client_url("front", "/x") == stack.link_endpoint("clients->front").url("/x")
    assert stack.client_url("api") == stack.direct_url("api")  # no client link: direct
    proxy = stack.platform.proxies.proxies["clients.front"]
    assert proxy["upstream"] == f"127.0.0.1:{stack.direct_endpoint('front').port}"


def test_proxies_to_a_down_service_are_disabled_until_it_starts(stack: Any) -> None:
    api = stack.platform.proxies.enabled
    stack.control.kill("front")
    assert api["clients.front"] is False
    assert api["front.api"] is True  # front is the client there: nothing to refuse
    stack.links.reset()  # a heal of every fault keeps the service's own hold
    assert api["clients.front"] is False
    stack.control.start("front")
    assert api["clients.front"] is True
    stack.control.wait_ready("front", 5)


def test_a_faults_hold_outlives_a_restart(stack: Any) -> None:
    stack.links.set_enabled("front->api", False)
    stack.control.restart("api", 1)
    assert stack.platform.proxies.enabled["front.api"] is False
    assert stack.links.holds("front->api") == {"fault"}
    stack.links.set_enabled("front->api", True)
    assert stack.platform.proxies.enabled["front.api"] is True
    stack.control.wait_ready("api", 5)
    assert stack.control.is_running("api")


def test_disconnect_falls_back_to_every_link_of_the_service(stack: Any) -> None:
    stack.control.disconnect("api")
    enabled = stack.platform.proxies.enabled
    assert not enabled["api.db"]
    assert not enabled["front.api"]
    stack.control.reconnect("api")
    assert enabled["api.db"]
    assert enabled["front.api"]


def test_a_paused_service_is_not_ready(stack: Any) -> None:
    stack.control.pause("db")
    with pytest.raises(StackError, match=r"not ready after 0.2s \(paused\)"):
        stack.control.wait_ready("db", 0.2)
    stack.control.resume("db")
    stack.control.wait_ready("db", 5)


def test_a_service_that_exits_fails_bring_up_and_nothing_is_left(tmp_path: Path) -> None:
    orch = StackOrchestrator(MemoryPlatform, crash_on_start=frozenset({"api"}))
    with pytest.raises(StackError, match="api: exited with code 3 before it was ready"):
        orch.up(stack_run(tmp_path), run_id="mem-2", run_dir=tmp_path / "run", env={})
    assert MarkerStore().all() == []
    assert list((tmp_path / "cache" / "ports").iterdir()) == []


def test_a_readiness_timeout_names_what_it_saw(tmp_path: Path) -> None:
    text = STACK.replace("ready: /ready,", "ready: {http: /ready, timeout: 300ms},")
    with pytest.raises(StackError, match=r"api: not ready after 0.3s \(GET .*/ready answered 503"):
        up(tmp_path, text, ready_after={"api": 10**6})


def test_a_command_check_runs_in_the_stack_folder(tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text("import sys; sys.exit(0)\n")
    text = STACK.replace(
        "side:  {command: [run-side]}",
        'side:  {command: [run-side], ready: {command: ["{python}", ok.py]}}',
    )
    st = up(tmp_path, text)
    assert st.control.is_running("side")
    assert st.down() == []


def test_teardown_goes_on_and_records_what_failed(tmp_path: Path) -> None:
    st = up(tmp_path, fail_stop=frozenset({"api"}))
    problems = st.down()
    assert problems == ["stopping api: api would not stop"]
    assert st.teardown_problems == problems
    assert st.platform.removed
    assert ("stop", "db") in st.platform.events  # the steps after the failure ran
    assert MarkerStore().all() == []
    assert list((tmp_path / "cache" / "ports").iterdir()) == []
    assert st.down() == []  # idempotent


def test_an_interrupt_during_teardown_is_raised_once_it_is_complete(tmp_path: Path) -> None:
    st = up(tmp_path, interrupt_stop=frozenset({"front"}))
    with pytest.raises(KeyboardInterrupt):
        st.down()
    stopped = [u for what, u in st.platform.events if what == "stop"]
    assert stopped.index("front") < stopped.index("db")  # stopped in reverse order
    assert set(stopped) == {*st.services, "toxiproxy"}  # every other unit still stopped
    assert st.platform.removed
    assert st.teardown_problems == ["stopping front: KeyboardInterrupt"]
    assert MarkerStore().all() == []
    assert st.down() == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(st.direct_url("api", "/ready"), timeout=1)


def test_a_started_service_refuses_to_start_once_teardown_began(stack: Any) -> None:
    stack.down()
    with pytest.raises(StackError, match="being torn down"):
        stack.control.start("api")
