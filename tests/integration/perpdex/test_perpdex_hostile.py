"""Hostile requests to every service of the real stack: each is a 4xx (or a JSON-RPC
error object) with a clear message, answered well within a generous client timeout,
and changes nothing (balances, escrow, L1 messages, the accounts' events).

The client timeout (`BOUND`) is a bound, not a measurement: before the strict parsers a
22-byte withdrawal took 37 s and a 60,000-call batch 18-37 s."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from l2chaos.stacks.perpdex.rpc import MAX_BATCH

from .conftest import Perp

pytestmark = pytest.mark.integration

ETH = "ETH-USD-PERP"
BOUND = 15.0  # seconds: any answer later than this fails the request
DEEP = b"[" * 100_000 + b"]" * 100_000
WATCHED = [1, 2]


@pytest.fixture
def unchanged(hardened_stack: Perp) -> Iterator[Perp]:
    """The shared stack, checked unchanged after the test (balances, escrow, events)."""
    p = hardened_stack
    mark = p.event_mark()
    before = p.state(WATCHED)
    yield p
    assert p.state(WATCHED) == before
    assert p.account_events_since(mark, WATCHED) == []


def _ui(p: Perp, method: str, path: str, **kw: Any) -> httpx.Response:
    return p.ui(method, path, 1, timeout=BOUND, **kw)


def _error(r: httpx.Response, status: int, field: str | None, words: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err: dict[str, Any] = r.json()["error"]
    assert err["field"] == field, err
    assert words in err["message"], err
    return err


ORDER = {"market": ETH, "side": "buy", "type": "limit", "size": "0.01", "price": "2000"}


@pytest.mark.parametrize(
    ("path", "body", "field", "words"),
    [
        ("/v1/withdrawals", {"amount": "1e999990"}, "amount", "decimal string"),
        ("/v1/deposits", {"amount": "1e999990"}, "amount", "decimal string"),
        ("/v1/withdrawals", {"amount": "\u0661"}, "amount", "decimal string"),
        ("/v1/orders", {**ORDER, "price": "1e999999999"}, "price", "decimal string"),
        ("/v1/orders", {**ORDER, "size": "0.00_1"}, "size", "decimal string"),
        ("/v1/orders", {**ORDER, "size": "\u0661"}, "size", "decimal string"),
        ("/v1/orders", {**ORDER, "size": " 1"}, "size", "decimal string"),
        ("/v1/orders", {**ORDER, "size": 1e300}, "size", "decimal string"),
        ("/v1/orders", {**ORDER, "price": "9" * 39}, "price", "sensible"),
    ],
)
def test_trader_api_refuses_malformed_numbers(
    unchanged: Perp, path: str, body: dict[str, Any], field: str, words: str
) -> None:
    _error(_ui(unchanged, "POST", path, json=body), 400, field, words)
    assert unchanged.http.get(unchanged.url("ui-api", "/health"), timeout=BOUND).status_code == 200


@pytest.mark.parametrize(
    ("content", "status", "words"),
    [
        (DEEP, 413, "larger than 65536 bytes"),  # 200 KB: over the trader API's limit
        (b"[" * 30_000 + b"]" * 30_000, 400, "nested deeper than 32"),
        (b'{"amount": NaN}', 400, "not valid JSON"),
        (b'{"amount": Infinity}', 400, "not valid JSON"),
        (b"\xff\xfe", 400, "not valid JSON"),
        (b'{"amount": "' + b"1" * 100_000 + b'"}', 413, "larger than 65536 bytes"),
    ],
)
def test_trader_api_refuses_unusable_bodies(
    unchanged: Perp, content: bytes, status: int, words: str
) -> None:
    for path in ("/v1/orders", "/v1/withdrawals", "/v1/deposits"):
        _error(_ui(unchanged, "POST", path, content=content), status, "(body)", words)


def test_trader_api_refuses_malformed_order_ids(unchanged: Perp) -> None:
    for raw in ("%C2%B2", "%D9%A1", "1_0", "-1", "0", "9" * 25, "%20%31"):
        r = _ui(unchanged, "DELETE", f"/v1/orders/{raw}")
        _error(r, 400, "order_id", "order_id must be an integer")


def _rpc(p: Perp, body: Any = None, content: bytes | None = None) -> httpx.Response:
    return p.http.post(p.url("rpc", "/"), json=body, content=content, timeout=BOUND)


def _call(method: str, params: Any, rid: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}


def test_rpc_refuses_unusable_requests(unchanged: Perp) -> None:
    p = unchanged
    r = _rpc(p, content=DEEP)
    assert (r.status_code, r.json()["error"]["code"]) == (400, -32700), r.text
    assert "nested deeper than 32" in r.json()["error"]["message"]
    big = [_call("starknet_blockNumber", [], i) for i in range(MAX_BATCH + 1)]
    r = _rpc(p, big)
    assert (r.status_code, r.json()["error"]["code"]) == (400, -32600), r.text
    assert f"at most {MAX_BATCH}" in r.json()["error"]["message"]
    r = _rpc(p, [_call("starknet_blockNumber", [], i) for i in range(60_000)])
    assert r.status_code == 413, r.text
    assert "larger than 1048576 bytes" in r.json()["error"]["message"]
    # the largest allowed batch is answered in full
    r = _rpc(p, big[:MAX_BATCH])
    assert r.status_code == 200
    assert all("result" in a for a in r.json())


def _entry(selector: str, calldata: list[Any]) -> dict[str, Any]:
    return {"entry_point_selector": selector, "calldata": calldata}


def test_rpc_answers_bad_params_with_error_objects(unchanged: Perp) -> None:
    p = unchanged
    invoke = "starknet_addInvokeTransaction"
    batch = [
        _call(invoke, 5, 1),
        _call(invoke, "x", 2),
        _call("starknet_getBlockWithTxs", {"block_id": {"block_number": 10**30}}, 3),
        _call("starknet_getBlockWithTxs", {"block_id": {"block_number": 2**62 - 1}}, 4),
        _call("starknet_getBlockWithTxs", {"block_id": {"block_hash": "0x\x00"}}, 5),
        _call("starknet_getTransactionReceipt", {"transaction_hash": "\x00"}, 6),
        _call("starknet_getEvents", {"filter": {"from_seq": "\u0661"}}, 7),
        _call("starknet_getEvents", {"filter": {"from_seq": 2**63}}, 8),
        _call("starknet_getEvents", {"filter": {"account": 2**63}}, 9),
        _call("starknet_getEvents", {"filter": {"kinds": ["\x00"]}}, 10),
        _call("starknet_call", {"request": _entry("position", [1, [ETH]])}, 11),
        _call("starknet_call", {"request": _entry("balance", [2**64])}, 12),
        5,
    ]
    r = _rpc(p, batch)
    assert r.status_code == 200, r.text
    codes = [a["error"]["code"] for a in r.json()]
    assert codes == [-32602, -32602, -32602, 24, -32602, -32602, -32602, -32602, -32602,
                     -32602, -32602, -32602, -32600]  # fmt: skip
    for a in r.json():
        assert "unavailable" not in a["error"]["message"], a


def test_sequencer_refuses_malformed_paths_and_batches(unchanged: Perp) -> None:
    p = unchanged
    seq = p.url("sequencer")
    for path in ("/state/orders/%C2%B2", "/state/accounts/%D9%A1", "/state/orders/1_0"):
        r = p.http.get(seq + path, timeout=BOUND)
        assert r.status_code == 400, (path, r.text)
        assert "must be an integer" in r.json()["error"]["message"]
    r = p.http.post(seq + "/txs", json=[{"kind": "order"}] * 1001, timeout=BOUND)
    _error(r, 400, "(body)", "at most 1000 per call")
    r = p.http.post(seq + "/tx", content=DEEP, timeout=BOUND)
    _error(r, 400, "(body)", "nested deeper")
    quotes = [{"market": ETH, "price": 1, "observed_ts_ns": 1}] * 65
    r = p.http.post(seq + "/oracle/prices", json={"prices": quotes, "nonce": 1}, timeout=BOUND)
    _error(r, 400, "prices", "at most 64")


def test_admin_inputs_are_bounded(unchanged: Perp) -> None:
    p = unchanged
    height = p.rpc("starknet_blockNumber")
    for off in (10**40, -(10**40), 365 * 86_400_000 + 1, 1.5, "1"):
        r = p.hook("sequencer", "/admin/chaos/clock", {"offset_ms": off})
        _error(r, 400, "offset_ms", "a year")
    for body, field in (({"to_block": "x"}, "to_block"), ({"blocks_back": -1}, "blocks_back")):
        _error(p.hook("sequencer", "/admin/chaos/rollback", body), 400, field, "integer >= 0")
    oracle_bodies: list[tuple[dict[str, Any], str, str]] = [
        ({"mode": "spike", "factor": 1e308}, "factor", "from 0 to 1000000"),
        ({"mode": "spike", "factor": -1}, "factor", "from 0 to 1000000"),
        ({"mode": "lag", "lag_ms": 10**12}, "lag_ms", "from 0 to 86400000"),
        ({"mode": "stale", "markets": [[ETH]]}, "markets", "markets must be a list"),
    ]
    for body, field, words in oracle_bodies:
        _error(p.hook("oracle", "/admin/chaos/oracle", body), 400, field, words)
    r = p.http.post(
        p.url("oracle", "/admin/chaos/oracle"),
        content=b'{"mode": "spike", "factor": NaN}',
        headers=p.admin,
        timeout=BOUND,
    )
    _error(r, 400, "(body)", "not valid JSON")
    _error(p.hook("bridge", "/admin/chaos/relayer", {"stalled": "yes"}), 400, "stalled", "true")
    # nothing took: the oracle is normal, the chain clock unskewed, blocks keep coming
    assert set(p.http.get(p.url("oracle", "/prices")).json()["modes"].values()) == {"normal"}
    state = p.http.get(p.url("sequencer", "/admin/state"), headers=p.admin).json()
    assert state["clock_offset_ms"] == 0
    p.wait("new blocks", lambda: p.rpc("starknet_blockNumber") > height)
