"""`ready:` checks in a stack file (one message naming file, line and field) and the
JSON-RPC predicate's quantities."""

from __future__ import annotations

from pathlib import Path

import pytest
from l2chaos.backends.readiness import quantity
from l2chaos.errors import StackSpecError
from l2chaos.stackspec import (
    CommandReady,
    HttpReady,
    JsonRpcReady,
    PostgresReady,
    RunningReady,
    TcpReady,
    load_stack,
)

HEAD = "name: s\nservices:\n  node:\n    command: [run]\n    port: 8545\n"


def load(tmp_path: Path, ready: str) -> object:
    (tmp_path / "stack.yaml").write_text(HEAD + f"    ready: {ready}\n")
    return load_stack(tmp_path / "stack.yaml").services["node"]


@pytest.mark.parametrize(
    ("ready", "check"),
    [
        ("/ready", HttpReady("/ready")),
        ("{http: /up}", HttpReady("/up")),
        ("{tcp: true}", TcpReady()),
        ("{command: [check.sh, '{port}']}", CommandReady(("check.sh", "{port}"))),
        (
            "{jsonrpc: eth_syncing, result: false}",
            JsonRpcReady("eth_syncing", result=False, check_result=True),
        ),
        (
            "{jsonrpc: eth_blockNumber, advances: true, path: /rpc}",
            JsonRpcReady("eth_blockNumber", path="/rpc", advances="eth_blockNumber"),
        ),
        (
            "{jsonrpc: eth_syncing, result: false, advances: eth_blockNumber}",
            JsonRpcReady(
                "eth_syncing", result=False, check_result=True, advances="eth_blockNumber"
            ),
        ),
    ],
)
def test_ready_forms(tmp_path: Path, ready: str, check: object) -> None:
    svc = load(tmp_path, ready)
    assert svc.ready_check == check  # type: ignore[attr-defined]


def test_a_timeout_in_the_check_is_the_services_ready_timeout(tmp_path: Path) -> None:
    svc = load(tmp_path, "{tcp: true, timeout: 90s}")
    assert svc.ready_timeout_ns == 90_000_000_000  # type: ignore[attr-defined]


def test_derived_checks(tmp_path: Path) -> None:
    (tmp_path / "stack.yaml").write_text(
        "name: s\nservices:\n  db: {postgres: {database: d, user: u}}\n"
        "  web: {command: [w], port: 1, health: /h}\n  raw: {command: [r], port: 2}\n"
        "  bg: {command: [b]}\n"
    )
    s = load_stack(tmp_path / "stack.yaml").services
    assert s["db"].ready_check == PostgresReady()
    assert s["web"].ready_check == HttpReady("/h")
    assert s["raw"].ready_check == TcpReady()
    assert s["bg"].ready_check == RunningReady()


@pytest.mark.parametrize(
    ("ready", "field", "words"),
    [
        ("ready", "services.node.ready", "HTTP path"),
        ("{tcp: true, http: /x}", "services.node.ready", "exactly one of"),
        ("{}", "services.node.ready", "exactly one of"),
        ("{tcp: yes please}", "services.node.ready.tcp", "expected true"),
        ("{http: ready}", "services.node.ready.http", "HTTP path"),
        ("{jsonrpc: eth_syncing}", "services.node.ready", "needs `result`"),
        ("{jsonrpc: 5, result: 1}", "services.node.ready.jsonrpc", "method name"),
        ("{jsonrpc: m, result: 1, params: 3}", "services.node.ready.params", "a list"),
        ("{jsonrpc: m, advances: 7}", "services.node.ready.advances", "method name"),
        ("{tcp: true, params: []}", "services.node.ready.params", "jsonrpc check only"),
        ("{tcp: true, timeout: soon}", "services.node.ready.timeout", ""),
        ("{tcp: true, timeout: 0s}", "services.node.ready.timeout", "positive"),
        ("{command: []}", "services.node.ready.command", "non-empty list"),
        ("{command: ['{nope}']}", "services.node.ready.command[0]", "unknown placeholder"),
        ("{tcp: true, wait: 1}", "services.node.ready.wait", "unknown key"),
    ],
)
def test_bad_checks_name_file_line_and_field(
    tmp_path: Path, ready: str, field: str, words: str
) -> None:
    with pytest.raises(StackSpecError) as err:
        load(tmp_path, ready)
    assert err.value.file == str(tmp_path / "stack.yaml")
    assert err.value.field == field
    assert err.value.line is not None
    assert err.value.line >= 6
    assert words in str(err.value)


def test_clients_links_and_reserved_names(tmp_path: Path) -> None:
    (tmp_path / "stack.yaml").write_text(HEAD + "links: ['clients -> node']\n")
    spec = load_stack(tmp_path / "stack.yaml")
    assert spec.client_link("node") is not None
    (tmp_path / "stack.yaml").write_text(HEAD + "links: ['node -> clients']\n")
    with pytest.raises(StackSpecError, match="unknown service 'clients'"):
        load_stack(tmp_path / "stack.yaml")
    (tmp_path / "stack.yaml").write_text("name: s\nservices:\n  clients: {command: [c]}\n")
    with pytest.raises(StackSpecError, match="'clients' is reserved"):
        load_stack(tmp_path / "stack.yaml")


@pytest.mark.parametrize(
    ("value", "number"),
    [(5, 5), ("0x1b4", 436), ("0X0", 0), ("12", None), (True, None), ("0xzz", None), (None, None)],
)
def test_quantities(value: object, number: int | None) -> None:
    assert quantity(value) == number
