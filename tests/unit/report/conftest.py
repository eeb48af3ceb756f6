"""A checked run with faults and known violations, for the report tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from l2chaos.invariants import check_run
from l2chaos.invariants.check import CheckOutcome
from l2chaos.invariants.simulate import generate_run


def corrupt(run: Path) -> None:
    """Two bad liquidations at price 0 and one acknowledged write that was lost."""
    events = (run / "audit/events.jsonl").read_text().splitlines()
    last = json.loads(events[-1])
    for i, account in enumerate((4242, 4343)):
        ev: dict[str, Any] = {
            "seq": last["seq"] + 1 + i,
            "block": last["block"],
            "block_seq": last["block_seq"],
            "host_ts_ns": last["host_ts_ns"],
            "chain_ts_ns": last["chain_ts_ns"],
            "kind": "liquidation",
            "tx": None,
            "data": {
                "account": account,
                "market": "BTC-USD-PERP",
                "size": 1000,
                "price": 0,
                "oracle_price": 0,
                "mark_price": 0,
                "guard": None,
                "cash": 10_000_000_000,
                "positions": {"BTC-USD-PERP": [1000, 0]},
                "markets": {},
                "equity": -1,
                "maintenance": 0,
                "fee": 0,
            },
        }
        events.append(json.dumps(ev))
    (run / "audit/events.jsonl").write_text("\n".join(events) + "\n")
    hist = (run / "history.jsonl").read_text().splitlines()
    t = json.loads(hist[-1])["t_ns"]
    common = {
        "op_id": "lost-1",
        "process": "p1",
        "worker": 0,
        "persona": "taker",
        "account": 7,
        "op": "place_order",
    }
    hist.append(json.dumps({"type": "invoke", **common, "args": {}, "t_ns": t + 1, "mono_ns": 0}))
    hist.append(
        json.dumps(
            {
                "type": "ok",
                **common,
                "result": {"tx_hash": "0xlost", "order_id": 1},
                "error": None,
                "t_ns": t + 2,
                "mono_ns": 0,
                "latency_ms": 0.001,
            }
        )
    )
    (run / "history.jsonl").write_text("\n".join(hist) + "\n")


@pytest.fixture(scope="session")
def checked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CheckOutcome]:
    run = tmp_path_factory.mktemp("report") / "run"
    generate_run(run, ops=3_000, blocks=800, seed=3)
    corrupt(run)
    return run, check_run(run)
