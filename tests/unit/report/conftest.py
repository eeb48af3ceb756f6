"""A checked run with faults and known violations, for the report tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from l2chaos.invariants.check import CheckOutcome, check_run
from l2chaos.invariants.simulate import generate_run

from tests._support.records import add_zero_price_liquidations


def corrupt(run: Path) -> None:
    """Two bad liquidations at price 0 and one acknowledged write that was lost."""
    add_zero_price_liquidations(run, [4242, 4343], cash=10_000_000_000, equity=-1, maintenance=0)
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
