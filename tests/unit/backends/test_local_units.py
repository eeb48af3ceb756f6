"""Pure parts of the local backend: template values, proxy names, binary lookup, Postgres
permissions and command line."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from l2chaos.backends.local import LocalPlatform, LocalStack
from l2chaos.backends.platform import PlatformContext
from l2chaos.backends.ports import PortReservation
from l2chaos.backends.postgres import (
    INITDB_ARGS,
    PgInstall,
    can_traverse,
    dsn,
    postgres_argv,
    quote_ident,
)
from l2chaos.backends.toxiproxy import Proxy, find_toxiproxy_server, proxy_name
from l2chaos.errors import StackError
from l2chaos.stackspec import TEMPLATE_KEYS, PostgresSpec, StackRun, load_stack, render

STACK = """
name: t
switches: {gate: {help: a switch}}
profiles: {enabled: {gate: true}}
settings:
  tick: {kind: duration, default: 250ms, env: T_TICK_MS, unit: ms}
services:
  db: {postgres: {database: app, user: appuser}}
  api:
    command: ["{python}", "-m", "app", "--port", "{port}", "--host", "{host}", "--dir", "{data_dir}"]
    env:
      DB: "postgresql://appuser@{link:api->db}/app"
      TOKEN: "{admin_token}"
      SEED: "{seed}"
      RUN: "{run_id}"
      SW: "{switches}"
      TICK: "{setting:tick}"
      DIRECT: "{direct:db}"
      DSN: "{direct_dsn:db}"
    port: 8000
    ready: /ready
    depends_on: [db]
links: ["api -> db"]
"""


@pytest.fixture
def local_stack(tmp_path: Path) -> Iterator[LocalStack]:
    (tmp_path / "stack.yaml").write_text(STACK)
    run = StackRun(load_stack(tmp_path / "stack.yaml"), "enabled", {"gate": True}, {}, seed=42)
    platform = LocalPlatform()
    st = LocalStack(
        run,
        platform,
        run_id="r-1",
        run_dir=tmp_path / "run",
        admin_token="tok",
        extra_env={},
        stop_timeout_s=1,
        say=print,
    )
    ports = {"toxiproxy": 21000, "db": 21001, "api": 21002, "api->db": 21003}
    st._ports = {name: PortReservation(port) for name, port in ports.items()}
    platform._ctx = PlatformContext(
        run=run,
        run_id="r-1",
        run_dir=tmp_path / "run",
        admin_token="tok",
        extra_env={},
        ports=ports,
        cancel=threading.Event(),
        say=print,
        save_marker=lambda: None,
    )
    platform.tempdir = tmp_path / "tmp"
    yield st
    st._http.close()


def test_template_values_cover_every_key(local_stack: LocalStack, tmp_path: Path) -> None:
    v = local_stack.template_values("api", out=tmp_path / "audit")
    assert v["python"] == sys.executable
    assert v["port"] == "21002"
    assert v["host"] == "127.0.0.1"
    assert v["link:api->db"] == "127.0.0.1:21003"  # the proxy, never the server
    assert v["direct:db"] == "127.0.0.1:21001"
    assert v["direct_dsn:db"] == "postgresql://appuser@127.0.0.1:21001/app"
    assert v["admin_token"] == "tok"
    assert v["seed"] == "42"
    assert v["run_id"] == "r-1"
    assert v["data_dir"] == str(tmp_path / "tmp" / "api")
    assert json.loads(v["switches"]) == {"gate": True}
    assert v["out"] == str(tmp_path / "audit")
    assert v["setting:tick"] == "250"
    keys = {k.split(":", 1)[0] for k in v}
    assert keys == set(TEMPLATE_KEYS)


def test_rendering_a_service(local_stack: LocalStack) -> None:
    v = local_stack.template_values("api")
    spec = local_stack.spec.services["api"]
    argv = [render(part, v) for part in spec.command]
    assert argv[-6:] == ["--port", "21002", "--host", "127.0.0.1", "--dir", argv[-1]]
    env = {k: render(x, v) for k, x in spec.env.items()}
    assert env["DB"] == "postgresql://appuser@127.0.0.1:21003/app"
    assert env["TICK"] == "250"
    assert "out" not in local_stack.template_values("api")


def test_endpoints(local_stack: LocalStack) -> None:
    assert local_stack.direct_url("api", "/ready") == "http://127.0.0.1:21002/ready"
    assert local_stack.direct_endpoint("db").hostport == "127.0.0.1:21001"
    assert local_stack.link_endpoint("api -> db").port == 21003
    assert local_stack.links_of("db") == ["api->db"]
    with pytest.raises(StackError, match="unknown service 'nope'; services: db, api"):
        local_stack.direct_url("nope")
    with pytest.raises(StackError, match="not running"):
        _ = local_stack.links


def test_proxy_names() -> None:
    assert proxy_name("sequencer->db") == "sequencer.db"
    assert proxy_name("ui-api -> rpc") == "ui-api.rpc"
    for bad in ("a", "->b", "a->", "a-b"):
        with pytest.raises(ValueError, match="not a link"):
            proxy_name(bad)


def test_proxy_from_api() -> None:
    p = Proxy.from_api(
        {
            "name": "a.b",
            "listen": "127.0.0.1:1",
            "upstream": "127.0.0.1:2",
            "enabled": False,
            "toxics": [
                {
                    "name": "x",
                    "type": "latency",
                    "stream": "upstream",
                    "toxicity": 0.5,
                    "attributes": {"latency": 10, "jitter": 0},
                }
            ],
        }
    )
    assert not p.enabled
    assert p.toxics[0].stream == "upstream"
    assert p.toxics[0].attributes == {"latency": 10, "jitter": 0}


def test_find_toxiproxy_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("L2CHAOS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("L2CHAOS_TOXIPROXY", raising=False)
    with pytest.raises(StackError, match=r"toxiproxy-server not found .* `bash \.ci/setup`"):
        find_toxiproxy_server()
    binary = tmp_path / "cache" / "bin" / "toxiproxy-server"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    assert find_toxiproxy_server() == binary
    monkeypatch.setenv("L2CHAOS_TOXIPROXY", str(tmp_path / "missing"))
    with pytest.raises(StackError, match="is not an executable file"):
        find_toxiproxy_server()


def test_can_traverse() -> None:
    root = Path(tempfile.mkdtemp(prefix="l2chaos-unit-"))  # under /tmp: others may traverse
    try:
        root.chmod(0o711)
        a = root / "a"
        b = a / "b"
        b.mkdir(parents=True)
        uid, gid = 54321, 54321  # nobody we know: only the "other" bits count
        a.chmod(0o700)
        assert not can_traverse(b, uid, [gid])
        a.chmod(0o711)
        assert can_traverse(b, uid, [gid])
        a.chmod(0o750)
        assert not can_traverse(b, uid, [gid])
        assert can_traverse(b, uid, [a.stat().st_gid])  # through the group bits
        assert can_traverse(b, 0, [])
    finally:
        shutil.rmtree(root)


def test_postgres_command_keeps_fsync_and_listens_on_loopback(tmp_path: Path) -> None:
    pg = PgInstall(Path("/opt/pg/bin"), None, "16.2")
    argv = postgres_argv(pg, tmp_path / "data", 21001)
    assert argv[0] == "/opt/pg/bin/postgres"
    joined = " ".join(argv)
    assert "fsync" not in joined  # never fsync=off: crash-recovery faults must mean something
    assert "listen_addresses=127.0.0.1" in joined
    assert "-p 21001" in joined
    assert "--no-sync" in INITDB_ARGS  # only initdb's own writes of the template


def test_postgres_names() -> None:
    assert quote_ident('we"ird') == '"we""ird"'
    assert dsn(PostgresSpec("app", "u"), "127.0.0.1", 5) == "postgresql://u@127.0.0.1:5/app"


def test_not_root_runs_postgres_as_this_user(monkeypatch: pytest.MonkeyPatch) -> None:
    from l2chaos.backends import postgres

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert postgres.resolve_pg_user() is None
