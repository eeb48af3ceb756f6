"""Response parsing of the trader side, and that the harness never imports Locust."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal

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
