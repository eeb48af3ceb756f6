"""History: records as pinned in docs/architecture.md, classification, merge, check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from l2chaos.load.history import (
    HistoryWriter,
    Outcome,
    check_history,
    classify_http,
    classify_rpc,
    describe_error,
    merge_histories,
    parse_json,
    worker_records,
    write_id,
)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def written(path: Path) -> list[dict[str, Any]]:
    """The records of a worker log, as the merge writes them."""
    return list(worker_records(path))


def test_writer_keeps_what_orjson_refuses(tmp_path: Path) -> None:
    """Integers beyond 64 bits (EVM values), non-string keys and Decimals are written
    exactly, through the standard library's encoder when orjson refuses them."""
    from decimal import Decimal

    w = HistoryWriter(tmp_path / "worker-0.jsonl", 0)
    big = 2**70 + 1
    h = w.invoke(process="p", persona="sender", account=1, op="send", args={"value": big})
    result: dict[Any, Any] = {1: "one", "price": Decimal("1.50"), "naïve": "é"}
    w.complete(h, "ok", result)
    w.close()
    inv, ok = written(tmp_path / "worker-0.jsonl")
    assert inv["args"] == {"value": big}
    assert ok["result"] == {"1": "one", "price": "1.50", "naïve": "é"}


def test_parse_json_falls_back_and_refuses_what_is_not_json() -> None:
    assert parse_json(b'{"a": [1, 2.5, "x"]}') == {"a": [1, 2.5, "x"]}
    assert parse_json(str(2**70).encode()) == 2**70  # beyond orjson's 64 bits
    assert parse_json(b"<html>busy</html>") is None
    assert parse_json(b'{"a": 1} trailing') is None
    assert parse_json(b"\xff\xfe") is None
    assert parse_json(b"") is None
    assert parse_json(None) is None


def test_writer_records_invoke_and_completion(tmp_path: Path) -> None:
    w = HistoryWriter(tmp_path / "worker-0.jsonl", 0)
    h = w.invoke(
        process="w0-u3", persona="taker", account=42, op="place_order", args={"size": "1"}, step=5
    )
    w.complete(h, "ok", {"order_id": 9001, "tx_hash": "0xab", "block": 57, "status": "accepted"})
    w.close()
    inv, ok = written(tmp_path / "worker-0.jsonl")
    assert inv["type"] == "invoke"
    assert ok["type"] == "ok"
    for key in ("op_id", "process", "worker", "persona", "account", "op"):
        assert inv[key] == ok[key]
    assert inv["op_id"] == "w0-0"
    assert inv["args"] == {"size": "1"}
    assert inv["step"] == 5
    assert ok["result"]["order_id"] == 9001
    assert ok["error"] is None
    assert ok["t_ns"] >= inv["t_ns"]
    assert ok["mono_ns"] >= inv["mono_ns"]
    assert ok["latency_ms"] >= 0
    assert ok["write"] is True
    # the merged history keeps the record format (and the sort key as a fixed prefix)
    out = tmp_path / "history.jsonl"
    merge_histories([tmp_path / "worker-0.jsonl"], out)
    assert lines(out) == [inv, ok]
    assert out.read_text().startswith('{"t_ns":')


def test_writer_batches_until_flushed_and_loses_only_a_cut_batch(tmp_path: Path) -> None:
    """Nothing is written per record; a flush writes the batch; a batch cut short by a
    killed worker is dropped whole, and the operations it would have completed are
    closed by the merge as unknown."""
    path = tmp_path / "worker-0.jsonl"
    w = HistoryWriter(path, 0)
    h = w.invoke(process="w0-u0", persona="taker", account=1, op="place_order", args={"n": 1})
    assert path.stat().st_size == 0
    w.flush()
    assert [r["type"] for r in written(path)] == ["invoke"]
    w.complete(h, "ok", {"order_id": 1})
    w.invoke(process="w0-u0", persona="taker", account=1, op="place_order", args={"n": 2})
    w.flush()
    w.close()
    data = path.read_bytes()
    path.write_bytes(data[:-10])  # the second batch cut short
    out = tmp_path / "history.jsonl"
    stats = merge_histories([path], out, end_t_ns=2**62)
    assert stats.partial_lines == 1
    assert stats.closed_at_end == 1
    recs = lines(out)
    assert [(r["type"], r.get("synthetic", False)) for r in recs] == [
        ("invoke", False),
        ("info", True),
    ]
    assert check_history(out).ok


def test_writer_idents_are_never_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the ident cache's size a key gets a new ident; one a caller kept stays valid."""
    import l2chaos.load.history as history

    monkeypatch.setattr(history, "_IDENT_CACHE_MAX", 2)
    w = HistoryWriter(tmp_path / "worker-0.jsonl", 0)
    kept = w.ident("w0-u0", "maker", 1, "get_orders")
    for n in range(1, 5):
        w.invoke(process=f"w0-u{n}", persona="maker", account=n, op="get_orders", args={})
    w.invoke_as(kept, {})
    w.close()
    procs = [r["process"] for r in written(tmp_path / "worker-0.jsonl")]
    assert procs == ["w0-u1", "w0-u2", "w0-u3", "w0-u4", "w0-u0"]


def test_writer_refuses_double_completion_and_bad_types(tmp_path: Path) -> None:
    w = HistoryWriter(tmp_path / "w.jsonl", 1)
    h = w.invoke(process="p", persona="reader", account=1, op="get_account", args={})
    with pytest.raises(ValueError, match="ok, fail or info"):
        w.complete(h, "maybe")
    w.complete(h, "info", error="timeout")
    with pytest.raises(ValueError, match="already complete"):
        w.complete(h, "ok")
    with pytest.raises(ValueError, match="already complete"):
        w.complete_raw(h, "{}")
    late = w.invoke(process="p", persona="reader", account=1, op="get_account", args={})
    w.close()
    w.flush()  # nothing once closed
    with pytest.raises(ValueError, match="closed"):
        w.invoke(process="p2", persona="reader", account=1, op="get_account", args={})
    with pytest.raises(ValueError, match="closed"):
        w.complete_raw(late, "{}")
    with pytest.raises(ValueError, match="closed"):
        w.complete(late, "ok")
    assert [r["type"] for r in written(tmp_path / "w.jsonl")] == ["invoke", "info", "invoke"]


class _Wrapped(Exception):
    def __init__(self, original: BaseException) -> None:
        super().__init__("retries exceeded")
        self.original = original


@pytest.mark.parametrize(
    ("status", "exc", "body", "expected"),
    [
        (200, None, {"order_id": 1}, Outcome("ok")),
        (201, None, None, Outcome("ok")),
        (
            400,
            None,
            {"error": {"code": "insufficient_margin", "message": "no", "field": "size"}},
            Outcome("fail", "HTTP 400: insufficient_margin: size: no"),
        ),
        (404, None, None, Outcome("fail", "HTTP 404")),
        (
            503,
            None,
            {"error": {"code": "chain_unavailable"}},
            Outcome("info", "HTTP 503: chain_unavailable"),
        ),
        (500, None, "oops", Outcome("info", "HTTP 500")),
        (302, None, None, Outcome("info", "HTTP 302")),
        (0, _Wrapped(TimeoutError("timed out")), None, Outcome("info", "timeout")),
        (0, TimeoutError("timed out"), None, Outcome("info", "timeout")),
        (0, ConnectionResetError(104, "reset"), None, Outcome("info", "connection reset")),
        (0, ConnectionRefusedError(111, "refused"), None, Outcome("fail", "connection refused")),
        (
            0,
            _Wrapped(ConnectionRefusedError(111, "refused")),
            None,
            Outcome("fail", "connection refused"),
        ),
        (0, OSError("weird"), None, Outcome("info", "OSError: weird")),
    ],
)
def test_classify_http(
    status: int, exc: BaseException | None, body: object, expected: Outcome
) -> None:
    assert classify_http(status, exc, body) == expected


def test_describe_error_names_closed_connections() -> None:
    class HTTPConnectionClosed(Exception):
        pass

    assert describe_error(HTTPConnectionClosed("x")) == "connection closed before the response"
    assert describe_error(BrokenPipeError()) == "broken pipe"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"jsonrpc": "2.0", "id": 1, "result": 5}, "ok"),
        ({"jsonrpc": "2.0", "id": 1, "result": None}, "ok"),
        ({"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "no method"}}, "fail"),
        ({"jsonrpc": "2.0", "id": 1, "error": {"code": -32602, "message": "bad params"}}, "fail"),
        ({"jsonrpc": "2.0", "id": 1, "error": {"code": 29, "message": "tx not found"}}, "fail"),
        ({"jsonrpc": "2.0", "id": 1, "error": {"code": -32603, "message": "internal"}}, "info"),
        (
            {"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": "sequencer down"}},
            "info",
        ),
        ({"jsonrpc": "2.0", "id": 1}, "info"),
        ("nope", "info"),
    ],
)
def test_classify_rpc(body: object, expected: str) -> None:
    assert classify_rpc(body).type == expected


def test_write_id() -> None:
    assert write_id({"tx_hash": "0x1"}) == "tx_hash"
    assert write_id({"order_id": 0}) == "order_id"
    assert write_id({"nonce": 3, "status": "pending"}) == "nonce"
    assert write_id({"tx_hash": "", "status": "accepted"}) is None
    assert write_id(None) is None


def _write(path: Path, records: list[dict[str, Any]], tail: str = "") -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)


def _rec(
    t: int, typ: str, op_id: str, process: str = "p", op: str = "get_account", **kw: Any
) -> dict[str, Any]:
    base = {
        "t_ns": t,
        "mono_ns": t,
        "type": typ,
        "op_id": op_id,
        "process": process,
        "worker": 0,
        "persona": "reader",
        "account": 1,
        "op": op,
    }
    if typ == "invoke":
        base["args"] = {}
    else:
        base |= {"result": kw.get("result", {}), "error": kw.get("error"), "latency_ms": 1.0}
    return base


def test_merge_orders_by_time_and_keeps_each_file_in_order(tmp_path: Path) -> None:
    a, b = tmp_path / "worker-0.jsonl", tmp_path / "worker-1.jsonl"
    _write(
        a,
        [
            _rec(10, "invoke", "w0-0", "w0-u0"),
            _rec(30, "ok", "w0-0", "w0-u0"),
            _rec(30, "invoke", "w0-1", "w0-u0"),
            _rec(50, "fail", "w0-1", "w0-u0"),
        ],
    )
    _write(
        b,
        [
            _rec(20, "invoke", "w1-0", "w1-u0"),
            _rec(30, "info", "w1-0", "w1-u0"),
            _rec(40, "invoke", "w1-1", "w1-u0.1"),
            _rec(45, "ok", "w1-1", "w1-u0.1"),
        ],
    )
    out = tmp_path / "history.jsonl"
    stats = merge_histories([a, b], out)
    recs = lines(out)
    assert [r["t_ns"] for r in recs] == sorted(r["t_ns"] for r in recs)
    assert [(r["op_id"], r["type"]) for r in recs][:4] == [
        ("w0-0", "invoke"),
        ("w1-0", "invoke"),
        ("w0-0", "ok"),
        ("w0-1", "invoke"),
    ]
    assert stats.records == 8
    assert stats.operations == 4
    assert stats.by_type == {"ok": 2, "fail": 1, "info": 1}
    assert check_history(out).ok


def test_merge_closes_open_ops_and_drops_a_cut_line(tmp_path: Path) -> None:
    a = tmp_path / "worker-0.jsonl"
    _write(
        a,
        [
            _rec(10, "invoke", "w0-0", "w0-u0", op="place_order"),
            _rec(12, "invoke", "w0-1", "w0-u1"),
        ],
        tail='{"t_ns":13,"mono_ns":13,"type":"ok","op_id":"w0-1"',
    )
    out = tmp_path / "history.jsonl"
    stats = merge_histories([a], out, end_t_ns=99)
    assert stats.partial_lines == 1
    assert stats.closed_at_end == 2
    recs = lines(out)
    closing = [r for r in recs if r.get("synthetic")]
    assert [r["op_id"] for r in closing] == ["w0-0", "w0-1"]
    assert all(r["type"] == "info" and r["t_ns"] == 99 and r["op"] for r in closing)
    assert closing[0]["op"] == "place_order"
    assert closing[0]["process"] == "w0-u0"
    chk = check_history(out)
    assert chk.ok, chk.problems
    assert not (tmp_path / "history.jsonl.tmp").exists()


def test_merge_handles_records_written_in_another_key_order(tmp_path: Path) -> None:
    a = tmp_path / "worker-0.jsonl"
    a.write_text(
        json.dumps(
            {
                "type": "invoke",
                "op_id": "x",
                "t_ns": 5,
                "mono_ns": 5,
                "process": "p",
                "worker": 0,
                "persona": "r",
                "account": 1,
                "op": "get_account",
                "args": {},
            }
        )
        + "\n"
        + "not json\n"
    )
    stats = merge_histories([a], tmp_path / "h.jsonl", end_t_ns=6)
    assert stats.records == 2
    assert stats.bad_lines == 1
    assert stats.closed_at_end == 1


def test_merge_streams_many_files(tmp_path: Path) -> None:
    files = []
    for w in range(5):
        recs = []
        for i in range(200):
            t = i * 10 + w
            recs += [
                _rec(t, "invoke", f"w{w}-{i}", f"w{w}-u0"),
                _rec(t + 3, "ok", f"w{w}-{i}", f"w{w}-u0"),
            ]
        f = tmp_path / f"worker-{w}.jsonl"
        _write(f, recs)
        files.append(f)
    out = tmp_path / "history.jsonl"
    stats = merge_histories(files, out)
    assert stats.operations == 1000
    assert stats.records == 2000
    assert check_history(out).ok


@pytest.mark.parametrize(
    ("records", "problem"),
    [
        ([_rec(1, "invoke", "a")], "invoked but never completed"),
        ([_rec(1, "ok", "a")], "never invoked"),
        ([_rec(1, "invoke", "a"), _rec(2, "ok", "a"), _rec(3, "ok", "a")], "completed twice"),
        ([_rec(5, "invoke", "a"), _rec(2, "ok", "a")], "before the previous record"),
        (
            [
                _rec(1, "invoke", "a"),
                _rec(2, "info", "a"),
                _rec(3, "invoke", "b"),
                _rec(4, "ok", "b"),
            ],
            "reused after an info",
        ),
        (
            [
                _rec(1, "invoke", "a"),
                _rec(2, "invoke", "b"),
                _rec(3, "ok", "a"),
                _rec(4, "ok", "b"),
            ],
            "already has a in flight",
        ),
        (
            [
                _rec(1, "invoke", "a", op="place_order"),
                _rec(2, "ok", "a", op="place_order", result={"status": "accepted"}),
            ],
            "without tx_hash/order_id/nonce",
        ),
        ([_rec(1, "invoke", "a"), _rec(2, "ok", "a", process="q")], "another process or op"),
        ([_rec(1, "sometimes", "a")], "unknown type"),
    ],
)
def test_check_history_finds_each_problem(
    tmp_path: Path, records: list[dict[str, Any]], problem: str
) -> None:
    p = tmp_path / "h.jsonl"
    _write(p, records)
    chk = check_history(p)
    assert not chk.ok
    assert any(problem in x for x in chk.problems), chk.problems


def test_check_history_counts_by_op(tmp_path: Path) -> None:
    p = tmp_path / "h.jsonl"
    _write(
        p,
        [
            _rec(1, "invoke", "a", op="place_order"),
            _rec(2, "ok", "a", op="place_order", result={"order_id": 1, "tx_hash": "0x1"}),
            _rec(3, "invoke", "b", op="place_order"),
            _rec(4, "fail", "b", op="place_order", error="HTTP 400"),
        ],
    )
    chk = check_history(p)
    assert chk.ok
    assert chk.by_op == {"place_order": {"ok": 1, "fail": 1, "info": 0}}
    assert chk.operations == 2
    assert chk.records == 4
