"""Pieces of run records that several checker and report tests write the same way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from l2chaos.invariants.synth import RecordWriter


def first_deposit(rw: RecordWriter, account: int = 1, amount: int = 100) -> dict[str, Any]:
    """Block 0 credits `account` with a deposit (nonce 1) of `amount`."""
    return rw.event(
        "deposit_credited",
        block=0,
        block_seq=0,
        host_s=0.0,
        data={"nonce": 1, "account": account, "amount": amount},
        ledger={"cash": [[account, amount]]},
    )


def add_zero_price_liquidations(run: Path, accounts: list[int], *, cash: int, **data: Any) -> None:
    """Append to the run's exported events one liquidation at price 0 per account (in the
    last event's block), each of a long 1000 BTC position; `data` adds fields."""
    path = run / "audit/events.jsonl"
    lines = path.read_text().splitlines()
    last = json.loads(lines[-1])
    for i, account in enumerate(accounts):
        ev: dict[str, Any] = {
            **{k: last[k] for k in ("block", "block_seq", "host_ts_ns", "chain_ts_ns")},
            "seq": last["seq"] + 1 + i,
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
                "cash": cash,
                "positions": {"BTC-USD-PERP": [1000, 0]},
                "markets": {},
                **data,
                "fee": 0,
            },
        }
        lines.append(json.dumps(ev))
    path.write_text("\n".join(lines) + "\n")
