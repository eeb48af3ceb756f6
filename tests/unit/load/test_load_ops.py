"""Response parsing of the trader side, and that the harness never imports Locust."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from l2chaos.load.ops import _judge_write, parse_markets, summarise


def test_parse_markets_accepts_list_and_mapping_shapes() -> None:
    listed = {
        "markets": [
            {"market": "BTC-USD-PERP", "index_price": "90000", "size_decimals": 6, "imf_bps": 500},
            {
                "name": "PAXG-USD-PERP",
                "oracle_price": "2650.3",
                "size_decimals": 5,
                "imf_bps": 1000,
            },
            {"market": "DEAD-USD-PERP", "index_price": None},
            "junk",
        ]
    }
    ms = parse_markets(listed)
    assert set(ms) == {"BTC-USD-PERP", "PAXG-USD-PERP", "DEAD-USD-PERP"}
    btc = ms["BTC-USD-PERP"]
    assert btc.index_price == Decimal(90000)
    assert btc.size_step == Decimal("0.000001")
    assert btc.price_step == Decimal(1)
    paxg = ms["PAXG-USD-PERP"]
    assert paxg.size_step == Decimal("0.00001")
    assert paxg.price_step == Decimal("0.1")
    assert paxg.max_leverage == 10
    assert ms["DEAD-USD-PERP"].index_price == 0
    by_name = parse_markets(
        {
            "markets": {
                "ETH-USD-PERP": {"index_price": "3000", "tick_size": "0.5", "size_step": "0.001"}
            }
        }
    )
    eth = by_name["ETH-USD-PERP"]
    assert eth.price_step == Decimal("0.5")
    assert eth.size_step == Decimal("0.001")
    assert parse_markets([{"market": "X", "index_price": "1"}])["X"].index_price == 1
    assert parse_markets("nonsense") == {}


def test_summarise_keeps_ids_and_compact_reads() -> None:
    order = {
        "order_id": 7,
        "tx_hash": "0xab",
        "block": 3,
        "status": "accepted",
        "fills": [],
        "internal": "dropped",
    }
    assert summarise("place_order", order) == {
        "order_id": 7,
        "tx_hash": "0xab",
        "block": 3,
        "status": "accepted",
        "fills": [],
    }
    assert summarise("place_order", {"receipt": {"tx_hash": "0x1", "status": "accepted"}}) == {
        "tx_hash": "0x1",
        "status": "accepted",
    }
    assert summarise(
        "get_positions", {"positions": [{"market": "BTC", "size": "0.1", "x": 1}]}
    ) == {"positions": [["BTC", "0.1"]]}
    assert summarise("get_positions", {"positions": {"BTC": {"size": "-1"}}}) == {
        "positions": [["BTC", "-1"]]
    }
    assert summarise("get_orders", {"orders": [{}, {}]}) == {"open": 2}
    assert summarise("rpc_block_number", {"jsonrpc": "2.0", "result": 12}) == {"block": 12}
    assert summarise(
        "rpc_get_block",
        {"result": {"block_number": 4, "block_hash": "0x9", "transactions": [1, 2]}},
    ) == {"block": 4, "hash": "0x9", "tx_count": 2}
    assert summarise("get_markets", {"markets": [{"market": "M", "index_price": "2.5"}]}) == {
        "prices": {"M": "2.5"}
    }


def test_a_write_is_acknowledged_only_with_an_id() -> None:
    assert (
        _judge_write("place_order", {"order_id": 1, "tx_hash": "0x1", "status": "accepted"}).type
        == "ok"
    )
    assert _judge_write(
        "place_order", {"tx_hash": "0x1", "status": "rejected", "reason": "margin"}
    ) == ("fail", "rejected: margin")
    assert _judge_write("deposit", {"nonce": 4, "status": "pending"}).type == "ok"
    assert _judge_write("withdraw", {"status": "accepted"}).type == "info"


def test_importing_the_load_package_does_not_import_locust_or_gevent() -> None:
    code = (
        "import sys, l2chaos.load, l2chaos.load.runner, l2chaos.load.ops\n"
        "bad = [m for m in ('gevent', 'locust', 'geventhttpclient') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


class _Answer:
    """What a trader reads of Locust's response: status, body (that may break), error."""

    def __init__(self, status: int, body: bytes | None, error: BaseException | None = None):
        self.status_code = status
        self._body = body
        self.error = error

    @property
    def content(self) -> bytes | None:
        if isinstance(self.error, BaseException) and self.status_code:
            raise self.error  # the body was cut short
        return self._body


_ANSWERS = [
    _Answer(200, b'{"account": 7, "cash": "10.5", "equity": "11", "other": 1}'),
    _Answer(200, b'{"account": {"account": 7, "cash": "1"}}'),
    _Answer(200, b"<html>busy</html>"),
    _Answer(200, b"\xef\xbb\xbf" + b'{"cash": "1"}'),  # a UTF-8 BOM: the standard library reads it
    _Answer(200, b'{"cash": 18446744073709551616}'),  # beyond orjson's 64 bits
    _Answer(200, b"\xff\xfe{}"),  # not UTF-8
    _Answer(200, b'{"cash": "' + b"9" * 5000 + b'"}'),  # larger than RAW_MAX
    _Answer(200, b""),
    _Answer(204, None),
    _Answer(404, b'{"error": {"code": "not_found"}}'),
    _Answer(503, b"down"),
    _Answer(0, None, TimeoutError("timed out")),
    _Answer(200, None, ConnectionResetError(104, "reset")),
]


class _Replay:
    """A session answering each request with the next of `_ANSWERS`."""

    def __init__(self) -> None:
        self.answers = iter(_ANSWERS)

    def request(self, method: str, url: str, **_kw: Any) -> _Answer:
        return next(self.answers)


def _recorded(tmp_path: Path, name: str, need_body: bool) -> tuple[list[Any], list[Any]]:
    """What the trader's balance reads of `_ANSWERS` returned, and the merged history."""
    from l2chaos.load.context import Account
    from l2chaos.load.history import HistoryWriter, merge_histories
    from l2chaos.load.ops import Trader
    from l2chaos.load.personas import make_brain
    from l2chaos.load.protocols.base import DriverArgs
    from l2chaos.load.protocols.perpdex import PERSONA_PARAMS
    from l2chaos.params import Where, bind_params

    d = tmp_path / name
    d.mkdir()
    w = HistoryWriter(d / "worker-0.jsonl", 0)
    args = DriverArgs(
        persona="bridger",
        settings=bind_params(PERSONA_PARAMS["bridger"], {}, Where(None, "test")),
        session=_Replay(),
        history=w,
        account=Account(7, "key"),
        endpoints={"ui": "http://127.0.0.1:9"},
        seed=1,
        worker=0,
        uid=0,
        ordinal=0,
        run_tag="t",
    )
    trader = Trader(args, make_brain("bridger", args.settings, seed=1, worker=0, ordinal=0))
    got = [
        trader.call("get_account", "GET", "/v1/account", args={}, need_body=need_body)
        for _ in _ANSWERS
    ]
    w.close()
    merge_histories([d / "worker-0.jsonl"], d / "history.jsonl")
    out = []
    for line in (d / "history.jsonl").read_text().splitlines():
        rec = json.loads(line)
        for key in ("t_ns", "mono_ns", "latency_ms"):
            rec.pop(key, None)
        out.append(rec)
    return got, out


def test_a_read_recorded_undecoded_gets_the_outcome_and_result_of_one_decoded_at_once(
    tmp_path: Path,
) -> None:
    """A 2xx answer to a read whose body is not used is kept undecoded and judged at
    the merge: the history is the same as when every answer is judged at once."""
    _, eager = _recorded(tmp_path, "eager", True)
    got, lazy = _recorded(tmp_path, "lazy", False)
    assert lazy == eager
    kept = [(tmp_path / d / "worker-0.jsonl").read_text().count('["r",') for d in ("lazy", "eager")]
    assert kept == [5, 0]  # the small UTF-8 2xx answers, undecoded
    assert [o.type for o, _ in got[:5]] == ["ok"] * 5  # not judged by the worker
    done = [(r["type"], r["error"]) for r in eager if r["type"] != "invoke"]
    assert done == [
        ("ok", None),
        ("ok", None),
        ("fail", "response is not JSON"),
        ("ok", None),
        ("ok", None),
        ("fail", "response is not JSON"),
        ("ok", None),
        ("fail", "response is not JSON"),
        ("fail", "response is not JSON"),
        ("fail", "HTTP 404: not_found"),
        ("info", "HTTP 503"),
        ("info", "timeout"),
        ("info", "response cut short: connection reset"),
    ]
    assert eager[1]["result"] == {"account": 7, "cash": "10.5", "equity": "11"}
    assert eager[9]["result"] == {"cash": 18446744073709551616}
