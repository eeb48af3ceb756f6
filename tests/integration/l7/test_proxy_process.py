"""The L7 proxy process on its own, behind the real Toxiproxy (the chain a `layer: http`
link gets): what it forwards untouched, what a client sees when the upstream is gone,
bounded buffering, the control API's token, and network faults still acting on the
client's own connections."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from l2chaos.backends.ports import PortAllocator, wait_listening
from l2chaos.backends.toxiproxy import ToxiproxyClient, find_toxiproxy_server
from l2chaos.l7proxy import launch
from l2chaos.l7proxy.client import L7Client, L7Error, L7Links
from l2chaos.l7proxy.rules import DropResponse, Error, Match, Rule

pytestmark = pytest.mark.integration

MAX_BODY = 64 * 1024


@dataclass
class Chain:
    url: str  # what a client uses: Toxiproxy's listener for the link
    links: L7Links
    toxiproxy: ToxiproxyClient
    upstream: subprocess.Popen[bytes]
    upstream_port: int
    decisions: Path
    control: str


def wait_port(port: int) -> None:
    assert wait_listening(port, 20), f"nothing listens on {port}"


def start_upstream(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, str(Path(__file__).parent / "upstream.py"), str(port)])
    wait_port(port)
    return proc


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    ports = PortAllocator().reserve(5)
    up, tp_api, tp_listen, l7_ctl, l7_listen = (r.port for r in ports)
    token = secrets.token_urlsafe(16)
    decisions = tmp_path / "l7.jsonl"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        upstream = start_upstream(up)
        procs.append(upstream)
        procs.append(
            subprocess.Popen(
                [str(find_toxiproxy_server()), "-host", "127.0.0.1", "-port", str(tp_api)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        argv = launch.command(sys.executable, f"127.0.0.1:{l7_ctl}", str(decisions))
        l7 = subprocess.Popen(
            [*argv, "--max-body", str(MAX_BODY)], env={**os.environ, launch.TOKEN_ENV: token}
        )
        procs.append(l7)
        client = L7Client(f"127.0.0.1:{l7_ctl}", token)
        links = launch.connect(
            client,
            {"a->b": (f"127.0.0.1:{l7_listen}", f"127.0.0.1:{up}")},
            lambda: l7.poll() is None,
            lambda: "",
        )
        wait_port(tp_api)
        tp = ToxiproxyClient(f"127.0.0.1:{tp_api}")
        tp.create_proxy("a.b", f"127.0.0.1:{tp_listen}", f"127.0.0.1:{l7_listen}")
        yield Chain(f"http://127.0.0.1:{tp_listen}", links, tp, upstream, up, decisions, client.api)
        client.close()
        tp.close()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
        for r in ports:
            r.release()


def test_forwards_verbs_headers_status_and_bodies_untouched(chain: Chain) -> None:
    with httpx.Client(trust_env=False) as http:
        r = http.put(chain.url + "/any/path?q=1", content=b"hello", headers={"X-Test": "kept"})
        assert (r.status_code, r.text, r.headers["X-Upstream"]) == (202, "plain 5 kept", "yes")
        # a rule that matches nothing changes nothing
        chain.links.add_rule("a->b", Rule("r", "rpc", Error(), Match(methods=("other",))))
        raw = b'{"jsonrpc":"2.0","id":7,"method":"m","params":[1]}'
        r = http.post(chain.url + "/", content=raw)
        assert r.json() == {"jsonrpc": "2.0", "id": 7, "result": {"echo": [1]}}
        assert http.post(chain.url + "/", content=b"{not json").text == "plain 9 "
        stats = chain.links.remove_rule("a->b", "r")
        assert stats == {"id": "r", "matched": 0, "hit": 0}
        assert chain.links.remove_rule("a->b", "r") is None
    assert not chain.decisions.exists() or chain.decisions.read_text() == ""


def test_dropped_answer_and_a_dead_upstream_close_the_connection_without_an_answer(
    chain: Chain,
) -> None:
    chain.links.add_rule("a->b", Rule("d", "rpc", DropResponse(), Match(methods=("write",))))
    with httpx.Client(trust_env=False) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            http.post(chain.url + "/", json={"jsonrpc": "2.0", "id": 1, "method": "write"})
        assert (
            http.post(
                chain.url + "/", json={"jsonrpc": "2.0", "id": 2, "method": "read"}
            ).status_code
            == 200
        )
        chain.upstream.terminate()
        chain.upstream.wait(10)
        # as through Toxiproxy alone: the connection closes, no made-up 502
        with pytest.raises(httpx.RemoteProtocolError):
            http.post(chain.url + "/", json={"jsonrpc": "2.0", "id": 3, "method": "read"})
    rows = [json.loads(line) for line in chain.decisions.read_text().splitlines()]
    assert [(r["call"]["id"], r["effect"]) for r in rows] == [(1, "drop")]


def test_network_faults_still_act_on_the_clients_connections(chain: Chain) -> None:
    with httpx.Client(trust_env=False) as http:
        chain.toxiproxy.set_enabled("a.b", False)
        with pytest.raises(httpx.ConnectError):
            http.post(chain.url + "/", content=b"x")
        chain.toxiproxy.set_enabled("a.b", True)
        assert http.post(chain.url + "/", content=b"x").status_code == 202


def test_bodies_over_the_cap_stream_through_and_are_logged(chain: Chain) -> None:
    chain.links.add_rule("a->b", Rule("e", "rpc", Error()))
    big = b"[" + b" " * (MAX_BODY * 3) + b"x"  # would parse as JSON-RPC if it were read
    with httpx.Client(trust_env=False, timeout=30) as http:
        r = http.post(chain.url + "/", content=big)
        assert r.text == f"plain {len(big)} "
        r = http.get(chain.url + f"/big?n={MAX_BODY * 4}")
        assert len(r.content) == MAX_BODY * 4
    rows = [json.loads(line) for line in chain.decisions.read_text().splitlines()]
    assert [r["effect"] for r in rows] == ["oversize"]


def test_control_api_needs_the_token_and_refuses_bad_rules(chain: Chain) -> None:
    wrong = L7Client(chain.control, "not-the-token")
    with pytest.raises(L7Error) as info:
        wrong.links()
    assert info.value.status == 401
    wrong.close()
    with pytest.raises(L7Error) as info:
        chain.links.client._call("POST", "/links/a.b/rules", {"id": "x", "family": "rpc"})
    assert info.value.status == 400
    assert "action" in str(info.value)
    with pytest.raises(L7Error) as info:
        chain.links.client.add_rule("nope", Rule("x", "rpc", Error()))
    assert info.value.status == 404
